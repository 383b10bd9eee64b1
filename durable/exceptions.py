"""Errors of the engine, with the official SDK's names, plus those of the self-hosted service.

Suspension and a lost lease are `BaseException`s so a handler's `except Exception` cannot
swallow them; everything a user is meant to catch is an `Exception`.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, NoReturn


class TerminationReason(enum.Enum):
    UNHANDLED_ERROR = "UNHANDLED_ERROR"
    INVOCATION_ERROR = "INVOCATION_ERROR"
    EXECUTION_ERROR = "EXECUTION_ERROR"
    CHECKPOINT_FAILED = "CHECKPOINT_FAILED"
    NON_DETERMINISTIC_EXECUTION = "NON_DETERMINISTIC_EXECUTION"
    STEP_INTERRUPTED = "STEP_INTERRUPTED"
    SERIALIZATION_ERROR = "SERIALIZATION_ERROR"


class DurableExecutionsError(Exception):
    """Base of every error the engine raises on purpose."""


class ValidationError(DurableExecutionsError):
    """An argument is out of range or of the wrong kind."""


class InvalidStateError(DurableExecutionsError):
    """The journal is in a state the engine did not expect."""


class UnrecoverableError(DurableExecutionsError):
    def __init__(self, message: str, termination_reason: TerminationReason) -> None:
        super().__init__(message)
        self.termination_reason = termination_reason


class ExecutionError(UnrecoverableError):
    """Ends the execution as FAILED, without retries."""

    def __init__(
        self,
        message: str,
        termination_reason: TerminationReason = TerminationReason.EXECUTION_ERROR,
    ) -> None:
        super().__init__(message, termination_reason)


class InvocationError(UnrecoverableError):
    """Ends this invocation; the execution is invoked again later."""

    def __init__(
        self,
        message: str,
        termination_reason: TerminationReason = TerminationReason.INVOCATION_ERROR,
    ) -> None:
        super().__init__(message, termination_reason)


class NonDeterministicExecutionError(ExecutionError):
    """The code asked for an operation that does not match what the journal recorded there."""

    def __init__(self, message: str, step_id: str | None = None) -> None:
        super().__init__(message, TerminationReason.NON_DETERMINISTIC_EXECUTION)
        self.step_id = step_id


class StepInterruptedError(InvocationError):
    """An at-most-once step was found started by an invocation that did not finish it."""

    def __init__(self, message: str, step_id: str | None = None) -> None:
        super().__init__(message, TerminationReason.STEP_INTERRUPTED)
        self.step_id = step_id


class NestedOperationError(ExecutionError):
    """An operation was started inside a step's body: a step body is one unit of work whose
    result is checkpointed once, so it cannot hold operations of its own (use a child context)."""


class InvocationDiedError(DurableExecutionsError):
    """Invocations kept dying at the same step (killed, or past their time budget)."""


class DurableOperationError(DurableExecutionsError):
    """An operation failed; carries the recorded error's type, message, data and stack."""

    def __init__(
        self,
        message: str | None = None,
        error_type: str | None = None,
        data: str | None = None,
        stack_trace: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.data = data
        self.stack_trace = stack_trace
        # The operation whose recorded failure this is (set by the engine when it raises it):
        # a redrive re-runs the operations whose failures ended the execution, and only those.
        self.operation_id: str | None = None

    @classmethod
    def from_error_fields(
        cls,
        error_type: str | None,
        message: str | None,
        data: str | None,
        stack_trace: list[str] | None,
    ) -> DurableOperationError:
        return cls(message, error_type, data, stack_trace)

    def __str__(self) -> str:
        return self.message or self.error_type or self.__class__.__name__


class StepError(DurableOperationError):
    """A step failed for good (retries exhausted or not retryable)."""


class InvokeError(DurableOperationError):
    pass


class ChildContextError(DurableOperationError):
    pass


class WaitForConditionError(DurableOperationError):
    pass


class CallbackError(DurableOperationError):
    """A callback completed with a failure sent by the outside world."""


class CallbackExternalError(CallbackError):
    pass


class CallbackTimeoutError(CallbackError):
    """A callback passed its timeout or heartbeat timeout."""


class CallbackSubmitterError(CallbackError):
    """The submitter of `wait_for_callback` failed for good."""


class SerDesError(DurableOperationError):
    """A value could not be serialized or deserialized; retrying will not help."""


class RetryableSerDesError(InvocationError):
    def __init__(
        self,
        message: str,
        termination_reason: TerminationReason = TerminationReason.SERIALIZATION_ERROR,
    ) -> None:
        super().__init__(message, termination_reason)


class SuspendExecution(BaseException):
    """Ends the invocation without ending the execution; it resumes on a wake-up."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TimedSuspendExecution(SuspendExecution):
    """Suspends until `scheduled_timestamp` (seconds since the epoch)."""

    def __init__(self, message: str, scheduled_timestamp: float) -> None:
        super().__init__(message)
        self.scheduled_timestamp = scheduled_timestamp

    @classmethod
    def from_datetime(cls, message: str, datetime_timestamp: datetime) -> TimedSuspendExecution:
        return cls(message, datetime_timestamp.timestamp())


class CheckpointFailedError(BaseException):
    """The journal could not be written (the database is unreachable): the invocation stops
    where it is, unrecorded, and the execution resumes from its last checkpoint later. Not an
    Exception, so it is never mistaken for a failure of the step that was running."""


class CheckpointRefusedError(BaseException):
    """The database refused the values of a journal write (not its connection: the write would
    fail the same way every time). The invocation fails the execution with this message rather
    than retry a write that cannot succeed. Values are validated before they reach a write, so
    this is a last line of defence."""


class LeaseLostError(BaseException):
    """This worker no longer holds the execution's lease: it must stop writing at once."""


class OrphanedChildException(BaseException):
    """An item of a map or parallel that the batch no longer waits for (it completed early)
    tried to run an operation: nothing more of it is recorded, and its thread ends. Not an
    Exception, so a handler's `except Exception` cannot swallow it."""

    def __init__(self, message: str, operation_id: str | None = None) -> None:
        super().__init__(message)
        self.operation_id = operation_id


# What ends an invocation rather than fail an operation: the process going away, and the
# engine's own signals. Any other BaseException a step body or a handler raises (an
# asyncio.CancelledError, say) is a failure of that step or handler, with its real type.
FATAL = (
    SystemExit,
    KeyboardInterrupt,
    GeneratorExit,
    SuspendExecution,
    CheckpointFailedError,
    CheckpointRefusedError,
    LeaseLostError,
    OrphanedChildException,
)


# Errors of the service API (durable.client), not of handlers.


class ExecutionNotFoundError(DurableExecutionsError):
    pass


class ExecutionAlreadyExistsError(DurableExecutionsError):
    """An execution with this name exists with a different input (a conflict)."""


class ExecutionNotRunningError(DurableExecutionsError):
    """The execution has already ended, so it cannot be stopped or completed."""


class CallbackNotFoundError(DurableExecutionsError):
    """No callback has this id (or its execution has ended)."""


class CallbackAlreadyCompletedError(DurableExecutionsError):
    """The callback was completed (or timed out) before; a callback completes once."""


class CallbackExpiredError(DurableExecutionsError):
    """The callback is past its timeout or heartbeat deadline; it can no longer be completed."""


class DatabaseUnreachableError(DurableExecutionsError):
    """An invocation could not take its execution's lease because the database did not answer.
    No handler code ran, so the wake-up is still good: a worker runs it once the database is back."""


class UnknownFunctionError(DurableExecutionsError):
    """No durable function is registered under this name."""


def raise_recorded(
    error: dict[str, Any] | None, cls: type[DurableOperationError], operation_id: str | None = None
) -> NoReturn:
    """Raise the error recorded in the journal as `cls`, the same on every replay."""
    error = error or {}
    exc = cls(
        error.get("ErrorMessage"),
        error.get("ErrorType"),
        error.get("ErrorData"),
        error.get("StackTrace"),
    )
    exc.operation_id = operation_id
    raise exc


def failure_path(error: BaseException) -> list[str]:
    """The operations whose recorded failures led to `error`, outermost first: `error` itself
    if an operation raised it, then along its explicit causes (`raise ... from`). A failure the
    handler caught is not on the path, even if the handler then failed while handling it: that
    failure was dealt with, and re-running it (a charge made twice) is not what a redrive is for."""
    path: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        operation_id = getattr(current, "operation_id", None)
        if isinstance(current, DurableOperationError) and operation_id and operation_id not in path:
            path.append(operation_id)
        current = current.__cause__
    return path
