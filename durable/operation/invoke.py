"""invoke: run another registered durable function as a child execution and wait for its end.

The invoke's START and the child's row are written in one fenced transaction, so whoever
commits first wins: a replay finds the operation and never starts a second child, and an
invocation that lost its lease starts none. The parent suspends (holding nothing) until the
child's end completes the operation and makes it due: a result, or InvokeError carrying the
child's error (or the official ChainedInvoke.Timeout when it timed out). A name that no
function is registered under fails the operation at once, as the official service does.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from durable import events
from durable.config import InvokeConfig
from durable.exceptions import InvokeError, SerDesError, ValidationError, raise_recorded
from durable.identifier import new_execution_id
from durable.serdes import JsonSerDes, deserialize, serialize
from durable.state import (
    ChildStart,
    ExecutionState,
    OperationRecord,
    OperationStatus,
    OperationSubType,
    OperationType,
)
from durable.storable import unstorable_reason, utf8_size

R = TypeVar("R")

_JSON = JsonSerDes()
_FAILED = (OperationStatus.FAILED, OperationStatus.TIMED_OUT, OperationStatus.STOPPED, OperationStatus.CANCELLED)


def run_invoke(
    state: ExecutionState,
    operation_id: str,
    parent_id: str | None,
    name: str | None,
    function_name: str,
    payload: Any,
    config: InvokeConfig[Any, R],
) -> R:
    sub_type = OperationSubType.CHAINED_INVOKE.value
    record = state.visit(operation_id, OperationType.CHAINED_INVOKE, sub_type, name, parent_id)
    if record is None:
        record = _start(state, operation_id, parent_id, name, function_name, payload, config)
    elif record.status is OperationStatus.STARTED:
        # The child may have ended since this invocation loaded the journal.
        record = state.refresh(operation_id) or record
    if record.status is OperationStatus.SUCCEEDED:
        if record.result is None:
            return None  # type: ignore[return-value]
        value: R = deserialize(config.serdes_result or _JSON, record.result, operation_id, state.execution_id)
        return value
    if record.status in _FAILED:
        raise_recorded(record.error, InvokeError, operation_id)
    label = repr(name) if name else operation_id[:12]
    # Woken by the child's end, like a callback's completion (the execution is due at once).
    state.suspend(f"waiting for invoke {label} of {function_name}", operation_id, None, callback=True)


def _start(
    state: ExecutionState,
    operation_id: str,
    parent_id: str | None,
    name: str | None,
    function_name: str,
    payload: Any,
    config: InvokeConfig[Any, R],
) -> OperationRecord:
    if not function_name or not isinstance(function_name, str):
        raise ValidationError("invoke needs the name of a registered durable function")
    timeout = config.timeout.to_seconds() if config.timeout is not None else None
    if timeout is not None and not 1 <= timeout <= 366 * 24 * 3600:
        raise ValidationError(f"an invoke timeout must be between 1 second and 366 days, got {timeout} seconds")
    text = _payload(state, config, payload, operation_id, name)
    now = state.now()
    record = OperationRecord(
        operation_id=operation_id,
        type=OperationType.CHAINED_INVOKE,
        sub_type=OperationSubType.CHAINED_INVOKE.value,
        name=name,
        status=OperationStatus.STARTED,
        parent_id=parent_id,
        started_at=now,
    )
    error = state.writer.function_error(function_name)
    if error is not None:
        # Nothing to start: the operation fails at once, without suspending.
        record.status, record.error, record.ended_at = OperationStatus.FAILED, error, now
        started = events.chained_invoke_started(function_name, None, None)
        state.checkpoint(record, [started, events.chained_invoke_ended(OperationStatus.FAILED, error)])
        return record
    child_id = str(new_execution_id())  # time-ordered, as start_execution's
    started = events.chained_invoke_started(function_name, text, child_id)
    state.start_child(record, [started], ChildStart(operation_id, child_id, function_name, text, timeout))
    return record


def _payload(
    state: ExecutionState, config: InvokeConfig[Any, Any], payload: Any, operation_id: str, name: str | None
) -> str:
    """The payload as the child's input: JSON text the journal can store. Raises SerDesError."""
    label = f"invoke {name!r}" if name else f"invoke {operation_id[:12]}"
    text = serialize(config.serdes_payload or _JSON, payload, operation_id, state.execution_id)
    try:
        json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SerDesError(f"{label}: the payload must serialize to JSON text: {exc}", "SerDesError") from exc
    reason = unstorable_reason(text)
    if reason:
        raise SerDesError(f"{label}: the payload cannot be stored: {reason}", "SerDesError")
    if utf8_size(text) > state.max_result_bytes:
        raise SerDesError(
            f"{label}: the payload is {utf8_size(text)} bytes; the limit is {state.max_result_bytes}", "SerDesError"
        )
    return text
