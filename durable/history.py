"""History events in the shape of the official service's GetDurableExecutionHistory."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from durable.events import RESULT_EVENTS
from durable.models import Execution, held_start

_PAYLOAD_KEYS = ("Input", "Result")


def history_events(execution: Execution, *, include_execution_data: bool = True) -> list[dict[str, Any]]:
    """Each event with its rank as EventId; payloads elided unless `include_execution_data`."""
    events = []
    rows = expand_rows(
        execution.history.order_by("id").values_list(
            "event_type", "operation_id", "parent_id", "name", "sub_type", "timestamp", "details", "started_at"
        )
    )
    results: dict[str | None, str | None] | None = None
    if include_execution_data and any(row[0] in RESULT_EVENTS for row in rows):
        results = dict(execution.operations.values_list("operation_id", "result"))
        results[None] = execution.result
    for rank, (event_type, op_id, parent_id, name, sub_type, timestamp, details) in enumerate(rows, 1):
        event: dict[str, Any] = {"EventType": event_type, "EventId": rank, "EventTimestamp": timestamp}
        if op_id:
            event.update(Id=op_id, Name=name, SubType=sub_type)
            if parent_id:
                event["ParentId"] = parent_id
        elif event_type.startswith("Execution"):
            event.update(Id=str(execution.pk), Name=execution.execution_name)
        body = dict(details or {})
        if results is not None and event_type in RESULT_EVENTS and "Result" in body:
            result = dict(body["Result"])
            result.setdefault("Payload", results.get(op_id or None))
            body["Result"] = result
        if not include_execution_data:
            for key in _PAYLOAD_KEYS:
                if key in body:
                    body[key] = {"Truncated": True}
        event[f"{event_type}Details"] = body
        events.append(event)
    return events


Row = tuple[str, Any, Any, Any, Any, Any, Any]


def expand_rows(rows: Iterable[tuple[Any, ...]]) -> list[Row]:
    """History rows (event type, operation id, parent id, name, sub type, timestamp, details,
    started_at) as the events they stand for, in order: a row with `started_at` is its
    operation's start (no details) at that time, then itself (HistoryEvent.events)."""
    events: list[Row] = []
    for event_type, op_id, parent_id, name, sub_type, timestamp, details, started_at in rows:
        start = held_start(event_type, started_at)
        if start is not None:
            events.append((start, op_id, parent_id, name, sub_type, started_at, {}))
        events.append((event_type, op_id, parent_id, name, sub_type, timestamp, details))
    return events
