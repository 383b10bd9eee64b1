"""Child contexts: a function with a context of its own, whose operations' ids derive from it.

A completed child returns its stored result without running again; an unfinished one replays
its own operations. A failure is recorded with the inner error's type, so a replay raises the
same error class as the first run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from durable.config import ChildConfig
from durable.exceptions import ChildContextError, ExecutionError, error_object
from durable.serdes import deserialize, serialize
from durable.state import (
    ExecutionState,
    HistoryRecord,
    OperationRecord,
    OperationStatus,
    OperationSubType,
    OperationType,
)

if TYPE_CHECKING:
    from durable.context import DurableContext

T = TypeVar("T")


def run_child(
    state: ExecutionState,
    operation_id: str,
    parent_id: str | None,
    name: str | None,
    config: ChildConfig[Any],
    func: Callable[[DurableContext], T],
    make_context: Callable[[str], DurableContext],
) -> T:
    sub_type = config.sub_type or OperationSubType.RUN_IN_CHILD_CONTEXT.value
    record = state.visit(operation_id, OperationType.CONTEXT, sub_type, name, parent_id)
    if record is not None and record.status is OperationStatus.SUCCEEDED:
        if record.result is None:
            return None  # type: ignore[return-value]
        value: T = deserialize(config.serdes, record.result, operation_id, state.execution_id)
        return value
    if record is not None and record.status is OperationStatus.FAILED:
        raise _recorded_error(record.error)
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
        state.checkpoint(record, [HistoryRecord("ContextStarted", None)], sync=False)
    try:
        result = func(make_context(operation_id))
    except ExecutionError:
        raise
    except Exception as exc:
        record.status = OperationStatus.FAILED
        record.error = error_object(exc)
        record.ended_at = state.now()
        state.checkpoint(record, [HistoryRecord("ContextFailed", None, {"Error": {"Payload": record.error}})])
        raise _recorded_error(record.error) from exc
    payload = None if result is None else serialize(config.serdes, result, operation_id, state.execution_id)
    record.status = OperationStatus.SUCCEEDED
    record.result = payload
    record.ended_at = state.now()
    state.checkpoint(
        record, [HistoryRecord("ContextSucceeded", None, {"Result": {"Payload": payload, "Truncated": False}})]
    )
    if payload is None:
        return None  # type: ignore[return-value]
    value = deserialize(config.serdes, payload, operation_id, state.execution_id)
    return value


def _recorded_error(error: dict[str, Any] | None) -> ChildContextError:
    """A ChildContextError whose `error_type` names the inner error's class, on every replay."""
    error = error or {}
    return ChildContextError(
        error.get("ErrorMessage"), error.get("ErrorType"), error.get("ErrorData"), error.get("StackTrace")
    )
