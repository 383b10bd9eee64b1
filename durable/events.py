"""History events: their types, and the one place each event's details are shaped.

The details follow the official service's GetDurableExecutionHistory (`<EventType>Details`).
A result is never copied into an event: it is stored once, in its operation's (or the
execution's) row, and `durable.history` shows it there (`{"Result": {"Truncated": false}}`).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from durable.state import HistoryRecord, OperationRecord


class EventType(enum.StrEnum):
    EXECUTION_STARTED = "ExecutionStarted"
    EXECUTION_SUCCEEDED = "ExecutionSucceeded"
    EXECUTION_FAILED = "ExecutionFailed"
    EXECUTION_TIMED_OUT = "ExecutionTimedOut"
    EXECUTION_STOPPED = "ExecutionStopped"
    EXECUTION_REDRIVEN = "ExecutionRedriven"
    EXECUTION_REENQUEUED = "ExecutionReenqueued"
    INVOCATION_COMPLETED = "InvocationCompleted"
    OPERATOR_ACTION = "OperatorAction"
    STEP_STARTED = "StepStarted"
    STEP_SUCCEEDED = "StepSucceeded"
    STEP_FAILED = "StepFailed"
    WAIT_STARTED = "WaitStarted"
    WAIT_SUCCEEDED = "WaitSucceeded"
    CALLBACK_STARTED = "CallbackStarted"
    CALLBACK_SUCCEEDED = "CallbackSucceeded"
    CALLBACK_FAILED = "CallbackFailed"
    CALLBACK_TIMED_OUT = "CallbackTimedOut"
    CONTEXT_STARTED = "ContextStarted"
    CONTEXT_SUCCEEDED = "ContextSucceeded"
    CONTEXT_FAILED = "ContextFailed"
    CHAINED_INVOKE_STARTED = "ChainedInvokeStarted"
    CHAINED_INVOKE_SUCCEEDED = "ChainedInvokeSucceeded"
    CHAINED_INVOKE_FAILED = "ChainedInvokeFailed"
    CHAINED_INVOKE_TIMED_OUT = "ChainedInvokeTimedOut"
    CHAINED_INVOKE_STOPPED = "ChainedInvokeStopped"


# Events whose result lives in a row, not in the event (see the module docstring).
RESULT_EVENTS = frozenset(
    {
        EventType.STEP_SUCCEEDED,
        EventType.CONTEXT_SUCCEEDED,
        EventType.CALLBACK_SUCCEEDED,
        EventType.EXECUTION_SUCCEEDED,
        EventType.CHAINED_INVOKE_SUCCEEDED,
    }
)
_RESULT_HELD_ELSEWHERE: dict[str, Any] = {"Result": {"Truncated": False}}


def _event(
    event_type: EventType,
    details: dict[str, Any] | None = None,
    *,
    operation: OperationRecord | None = None,
    at: datetime | None = None,
) -> HistoryRecord:
    return HistoryRecord(event_type.value, operation, details or {}, at)


def _error(error: dict[str, Any] | None) -> dict[str, Any]:
    return {"Error": {"Payload": error}} if error is not None else {}


# Operations' events (the operation and the time are filled in when they are checkpointed).


def step_started() -> HistoryRecord:
    return _event(EventType.STEP_STARTED)


def step_succeeded(attempt: int) -> HistoryRecord:
    details = {**_RESULT_HELD_ELSEWHERE}
    if attempt > 1:
        details["RetryDetails"] = {"CurrentAttempt": attempt}
    return _event(EventType.STEP_SUCCEEDED, details)


def step_succeeded_once() -> HistoryRecord:
    """A wait_for_condition's last poll: its state is the result (no retry details)."""
    return _event(EventType.STEP_SUCCEEDED, {**_RESULT_HELD_ELSEWHERE})


def condition_polled(attempt: int, next_poll_delay: int) -> HistoryRecord:
    """A wait_for_condition poll whose condition did not hold yet: the official service records
    it as a step that succeeded and will run again (its state is in the operation's row)."""
    retry = {"CurrentAttempt": attempt, "NextAttemptDelaySeconds": next_poll_delay}
    return _event(EventType.STEP_SUCCEEDED, {"RetryDetails": retry})


def step_failed(error: dict[str, Any], attempt: int, next_attempt_delay: int | None = None) -> HistoryRecord:
    # The official service records a delay of 0 on the attempt that failed the step for good.
    retry: dict[str, Any] = {"CurrentAttempt": attempt, "NextAttemptDelaySeconds": next_attempt_delay or 0}
    return _event(EventType.STEP_FAILED, {**_error(error), "RetryDetails": retry})


def wait_started(seconds: int, until: datetime) -> HistoryRecord:
    return _event(EventType.WAIT_STARTED, {"Duration": seconds, "ScheduledEndTimestamp": until.isoformat()})


def wait_succeeded(seconds: int) -> HistoryRecord:
    return _event(EventType.WAIT_SUCCEEDED, {"Duration": seconds})


def callback_started(callback_id: str, timeout: int, heartbeat_timeout: int) -> HistoryRecord:
    details = {"CallbackId": callback_id, "Timeout": timeout, "HeartbeatTimeout": heartbeat_timeout}
    return _event(EventType.CALLBACK_STARTED, details)


def callback_completed(
    operation: OperationRecord, *, succeeded: bool, has_result: bool, error: dict[str, Any] | None, at: datetime
) -> HistoryRecord:
    if succeeded:
        details = {**_RESULT_HELD_ELSEWHERE} if has_result else {}
        return _event(EventType.CALLBACK_SUCCEEDED, details, operation=operation, at=at)
    return _event(EventType.CALLBACK_FAILED, _error(error), operation=operation, at=at)


def callback_timed_out(
    error: dict[str, Any], *, operation: OperationRecord | None = None, at: datetime | None = None
) -> HistoryRecord:
    return _event(EventType.CALLBACK_TIMED_OUT, _error(error), operation=operation, at=at)


def context_started() -> HistoryRecord:
    return _event(EventType.CONTEXT_STARTED)


def context_succeeded() -> HistoryRecord:
    return _event(EventType.CONTEXT_SUCCEEDED, {**_RESULT_HELD_ELSEWHERE})


def context_failed(error: dict[str, Any]) -> HistoryRecord:
    return _event(EventType.CONTEXT_FAILED, _error(error))


def chained_invoke_started(function_name: str, payload: str | None, child_execution_id: str | None) -> HistoryRecord:
    """An invoke's start: the function, its input and the child execution (none if it was not found)."""
    details: dict[str, Any] = {"FunctionName": function_name}
    if payload is not None:
        details["Input"] = {"Payload": payload, "Truncated": False}
    if child_execution_id is not None:
        details["DurableExecutionArn"] = child_execution_id
    return _event(EventType.CHAINED_INVOKE_STARTED, details)


_CHAINED_INVOKE_ENDS = {
    "SUCCEEDED": EventType.CHAINED_INVOKE_SUCCEEDED,
    "FAILED": EventType.CHAINED_INVOKE_FAILED,
    "TIMED_OUT": EventType.CHAINED_INVOKE_TIMED_OUT,
    "STOPPED": EventType.CHAINED_INVOKE_STOPPED,
}


def chained_invoke_ended(
    status: str,
    error: dict[str, Any] | None,
    *,
    has_result: bool = False,
    operation: OperationRecord | None = None,
    at: datetime | None = None,
) -> HistoryRecord:
    """ChainedInvokeSucceeded, Failed, TimedOut or Stopped (`status` is the operation's)."""
    event_type = _CHAINED_INVOKE_ENDS[str(status)]
    if event_type is EventType.CHAINED_INVOKE_SUCCEEDED:
        details = {**_RESULT_HELD_ELSEWHERE} if has_result else {}
    else:
        details = _error(error)
    return _event(event_type, details, operation=operation, at=at)


def operation_cancelled(operation_type: str, reason: str) -> HistoryRecord:
    """An operation of a race's losing branch, cancelled: WaitCancelled (the official event),
    and ours for the other types (ContextCancelled, CallbackCancelled, StepCancelled...)."""
    kind = {"CHAINED_INVOKE": "ChainedInvoke"}.get(operation_type, operation_type.capitalize())
    return HistoryRecord(f"{kind}Cancelled", None, {"Reason": reason})


# The execution's events.


def execution_started(payload: str, timeout_seconds: int, at: datetime) -> HistoryRecord:
    details = {"Input": {"Payload": payload, "Truncated": False}, "ExecutionTimeout": timeout_seconds}
    return _event(EventType.EXECUTION_STARTED, details, at=at)


def execution_ended(status: str, *, error: dict[str, Any] | None, has_result: bool, at: datetime) -> HistoryRecord:
    """ExecutionSucceeded, ExecutionFailed or ExecutionTimedOut (`status` is the execution's)."""
    event_type = {
        "SUCCEEDED": EventType.EXECUTION_SUCCEEDED,
        "FAILED": EventType.EXECUTION_FAILED,
        "TIMED_OUT": EventType.EXECUTION_TIMED_OUT,
    }[str(status)]
    details = _error(error) if error is not None else ({**_RESULT_HELD_ELSEWHERE} if has_result else {})
    return _event(event_type, details, at=at)


def execution_stopped(error: dict[str, Any] | None, at: datetime) -> HistoryRecord:
    return _event(EventType.EXECUTION_STOPPED, _error(error), at=at)


def execution_redriven(
    cleared: list[str], reopened: list[str], previous_error: dict[str, Any] | None, at: datetime
) -> HistoryRecord:
    details = {"ClearedOperations": cleared, "ReopenedContexts": reopened, "PreviousError": previous_error}
    return _event(EventType.EXECUTION_REDRIVEN, details, at=at)


def execution_reenqueued(previous_wake_at: datetime | None, at: datetime) -> HistoryRecord:
    details = {"PreviousWakeAt": previous_wake_at.isoformat() if previous_wake_at else None}
    return _event(EventType.EXECUTION_REENQUEUED, details, at=at)


def invocation_completed(details: dict[str, Any], at: datetime) -> HistoryRecord:
    """`details`: StartTimestamp, DueTimestamp, EndTimestamp, and Error when it failed."""
    return _event(EventType.INVOCATION_COMPLETED, details, at=at)


def operator_action(details: dict[str, Any], at: datetime) -> HistoryRecord:
    return _event(EventType.OPERATOR_ACTION, details, at=at)
