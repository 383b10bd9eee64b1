"""Child contexts: a function with a context of its own, whose operations' ids derive from it.

A completed child returns its stored result without running again; an unfinished one replays
its own operations. A failure is recorded with the inner error's type, so a replay raises the
same error class as the first run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from durable import events
from durable.config import ChildConfig
from durable.errors import ErrorObject
from durable.exceptions import FATAL, ChildContextError, ExecutionError, SerDesError
from durable.serdes import deserialize, serialize
from durable.state import (
    ExecutionState,
    OperationRecord,
    OperationStatus,
    OperationSubType,
    OperationType,
)
from durable.storable import unstorable_reason, utf8_size

T = TypeVar("T")
C = TypeVar("C")  # the context type (DurableContext): generic, so this module needs no import of it


def run_child(
    state: ExecutionState,
    operation_id: str,
    parent_id: str | None,
    name: str | None,
    config: ChildConfig[Any],
    func: Callable[[C], T],
    make_context: Callable[[str], C],
) -> T:
    sub_type = config.sub_type or OperationSubType.RUN_IN_CHILD_CONTEXT.value
    record = state.visit(operation_id, OperationType.CONTEXT, sub_type, name, parent_id)
    if record is not None and record.status is OperationStatus.SUCCEEDED:
        if record.result is None:
            return None  # type: ignore[return-value]
        value: T = deserialize(config.serdes, record.result, operation_id, state.execution_id)
        return value
    if record is not None and record.status is OperationStatus.FAILED:
        raise _recorded_error(record.error, operation_id)
    if record is None:
        record = OperationRecord(
            operation_id=operation_id,
            type=OperationType.CONTEXT,
            sub_type=sub_type,
            name=name,
            status=OperationStatus.STARTED,
            parent_id=parent_id,
            started_at=state.now(),
        )
        state.checkpoint(record, [events.context_started()], sync=False)
    try:
        result = func(make_context(operation_id))
        payload = None if result is None else _payload(state, config, result, operation_id, name)
    except BaseException as exc:
        if isinstance(exc, (*FATAL, ExecutionError)) or state.halted is not None:
            raise
        # Any other exception (a BaseException such as asyncio.CancelledError included) fails
        # the child, recorded with the inner error's type.
        record.status = OperationStatus.FAILED
        record.error = ErrorObject.from_exception(exc).to_dict()
        record.ended_at = state.now()
        state.checkpoint(record, [events.context_failed(record.error)])
        raise _recorded_error(record.error, operation_id) from exc
    record.status = OperationStatus.SUCCEEDED
    record.result = payload
    record.ended_at = state.now()
    # A wait for a callback returns the callback's result, which its sender wrote: a replay
    # comes to the same end from the journal, so it rides with the next write.
    derived = sub_type == OperationSubType.WAIT_FOR_CALLBACK.value
    state.checkpoint(record, [events.context_succeeded()], sync=not derived, rederivable=derived)
    if payload is None:
        return None  # type: ignore[return-value]
    value = deserialize(config.serdes, payload, operation_id, state.execution_id)
    return value


def _payload(state: ExecutionState, config: ChildConfig[Any], result: Any, operation_id: str, name: str | None) -> str:
    """The child's result as the journal will store it. Raises SerDesError naming the context."""
    label = f"child context {name!r}" if name else f"child context {operation_id[:12]}"
    payload = serialize(config.serdes, result, operation_id, state.execution_id)
    reason = unstorable_reason(payload)
    if reason:
        raise SerDesError(f"{label} returned a value that cannot be stored: {reason}", "SerDesError")
    size = utf8_size(payload)
    if size > state.max_result_bytes:
        raise SerDesError(
            f"{label} returned {size} bytes once serialized; the limit is {state.max_result_bytes} bytes",
            "SerDesError",
        )
    return payload


def _recorded_error(error: dict[str, Any] | None, operation_id: str) -> ChildContextError:
    """A ChildContextError whose `error_type` names the inner error's class, on every replay."""
    error = error or {}
    exc = ChildContextError(
        error.get("ErrorMessage"), error.get("ErrorType"), error.get("ErrorData"), error.get("StackTrace")
    )
    exc.operation_id = operation_id
    return exc
