"""The events the outbox holds, and the one place that knows their shape.

An execution's status change is shaped like Lambda's EventBridge "Durable Execution Status
Change" event: `detail` carries the execution's ARN-like id and name, the function, the status
(and the one before it), start and end times and the error, in the fields and shape of Lambda's
GetDurableExecution (`durableExecutionArn`, `startTimestamp`, `error.ErrorType`...). An
operation's completion (opt-in per function) is a "Durable Execution Operation Status Change".
`envelope` wraps a stored event as EventBridge delivers one (`id`, `detail-type`, `source`,
`time`, `resources`, `detail`): what a webhook receives, and what `put_events` is given.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from durable.identifier import new_event_id

STATUS_CHANGE = "Durable Execution Status Change"
OPERATION_STATUS_CHANGE = "Durable Execution Operation Status Change"
# The operation statuses that end an operation (an operation event is sent for each).
OPERATION_END_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED", "CANCELLED"})


@dataclass(frozen=True)
class OutboxRecord:
    """One event as the store writes it (see durable.models.OutboxEvent)."""

    id: uuid.UUID
    execution_id: str
    detail_type: str
    function_name: str
    execution_name: str
    status: str
    previous_status: str
    operation_id: str | None
    detail: dict[str, Any]
    created_at: datetime

    @property
    def pk(self) -> uuid.UUID:
        """Its id, as the stored event's (a sink sends either, durable.sinks)."""
        return self.id


def execution_arn(function_name: str, execution_name: str, execution_id: str) -> str:
    """An id in the shape of a durable execution's ARN (function, then execution name and id)."""
    return f"arn:durable:function:{function_name}/durable-execution/{execution_name}/{execution_id}"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def status_change(
    *,
    execution_id: str,
    function_name: str,
    execution_name: str,
    status: str,
    previous_status: str,
    started_at: datetime,
    at: datetime,
    error: dict[str, Any] | None = None,
) -> OutboxRecord:
    """An execution's status change at `at` (RUNNING at its start and on a redrive; an end)."""
    execution_id = str(execution_id)
    detail: dict[str, Any] = {
        "durableExecutionArn": execution_arn(function_name, execution_name, execution_id),
        "durableExecutionName": execution_name,
        "executionId": execution_id,
        "functionName": function_name,
        "status": str(status),
        "previousStatus": str(previous_status),
        "startTimestamp": _time(started_at),
        "endTimestamp": None if str(status) == "RUNNING" else _time(at),
    }
    if error is not None:
        detail["error"] = error
    return OutboxRecord(
        new_event_id(at),
        execution_id,
        STATUS_CHANGE,
        function_name,
        execution_name,
        str(status),
        str(previous_status),
        None,
        detail,
        at,
    )


def operation_change(
    *,
    execution_id: str,
    function_name: str,
    execution_name: str,
    operation: Any,
    at: datetime,
) -> OutboxRecord:
    """An operation's completion (`operation`: the replay core's OperationRecord)."""
    execution_id = str(execution_id)
    status = str(getattr(operation.status, "value", operation.status))
    detail: dict[str, Any] = {
        "durableExecutionArn": execution_arn(function_name, execution_name, execution_id),
        "durableExecutionName": execution_name,
        "executionId": execution_id,
        "functionName": function_name,
        "operationId": operation.operation_id,
        "parentId": operation.parent_id,
        "operationType": str(getattr(operation.type, "value", operation.type)),
        "operationSubType": operation.sub_type,
        "operationName": operation.name,
        "status": status,
        "attempt": operation.attempt,
        "startTimestamp": _time(operation.started_at),
        "endTimestamp": _time(operation.ended_at or at),
    }
    if operation.error is not None:
        detail["error"] = operation.error
    return OutboxRecord(
        new_event_id(at),
        execution_id,
        OPERATION_STATUS_CHANGE,
        function_name,
        execution_name,
        status,
        "",
        operation.operation_id,
        detail,
        at,
    )


def envelope(
    *, event_id: str, detail_type: str, source: str, created_at: datetime, detail: dict[str, Any]
) -> dict[str, Any]:
    """The event as EventBridge delivers it to its targets."""
    arn = detail.get("durableExecutionArn")
    return {
        "version": "0",
        "id": str(event_id),
        "detail-type": detail_type,
        "source": source,
        "account": "",
        "time": created_at.isoformat(),
        "region": "",
        "resources": [arn] if arn else [],
        "detail": detail,
    }
