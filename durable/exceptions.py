"""Errors of the engine, with the official SDK's names, plus those of the self-hosted service.

Suspension and a lost lease are `BaseException`s so a handler's `except Exception` cannot
swallow them; everything a user is meant to catch is an `Exception`.
"""

from __future__ import annotations

import enum
import traceback
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


class LeaseLostError(BaseException):
    """This worker no longer holds the execution's lease: it must stop writing at once."""


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


class UnknownFunctionError(DurableExecutionsError):
    """No durable function is registered under this name."""


def error_object(error: BaseException) -> dict[str, Any]:
    """The error in the journal's shape: ErrorType, ErrorMessage, ErrorData, StackTrace."""
    if isinstance(error, DurableOperationError):
        # As the official SDK records it: the wrapper's type, the original message and stack.
        return {
            "ErrorType": type(error).__name__,
            "ErrorMessage": error.message or "",
            "ErrorData": error.data,
            "StackTrace": error.stack_trace or _stack(error),
        }
    return {
        "ErrorType": type(error).__name__,
        "ErrorMessage": str(error),
        "ErrorData": None,
        "StackTrace": _stack(error),
    }


def _stack(error: BaseException) -> list[str]:
    return [line.rstrip("\n") for line in traceback.format_exception(error)][-40:]


def raise_recorded(error: dict[str, Any] | None, cls: type[DurableOperationError]) -> NoReturn:
    """Raise the error recorded in the journal as `cls`, the same on every replay."""
    error = error or {}
    raise cls(
        error.get("ErrorMessage"),
        error.get("ErrorType"),
        error.get("ErrorData"),
        error.get("StackTrace"),
    )
