"""The journal as a timeline for people: operations in order, nested by parent context."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from durable.models import Execution, Operation

PREVIEW_CHARS = 200


@dataclass(frozen=True)
class TimelineRow:
    operation: Operation
    depth: int
    duration: timedelta | None
    result_preview: str
    error: dict[str, Any] | None
    stack_trace: str

    @property
    def indent_em(self) -> float:
        return self.depth * 1.5


def preview(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    if text is None:
        return ""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def pretty_json(text: str | None) -> str:
    """Indented JSON for display; text that is not JSON is shown as it is."""
    if text is None:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True)
    except ValueError:
        return text


def pretty_value(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def stack_trace(error: dict[str, Any] | None) -> str:
    lines = (error or {}).get("StackTrace") or []
    return "\n".join(str(line) for line in lines)


@dataclass(frozen=True)
class OperationView:
    """One operation of an execution as its readers see it (`durable.client.list_operations`)."""

    operation_id: str
    parent_id: str | None
    depth: int
    type: str
    sub_type: str
    name: str | None
    status: str
    attempt: int
    started_at: datetime | None
    ended_at: datetime | None
    result: str | None
    error: dict[str, Any] | None
    callback_id: str | None

    @property
    def duration(self) -> timedelta | None:
        return self.ended_at - self.started_at if self.started_at and self.ended_at else None


def _in_order(operations: list[Operation]) -> list[tuple[Operation, int]]:
    """Depth-first in journal order: each context is followed by what ran inside it."""
    known = {op.operation_id for op in operations}
    children: dict[str | None, list[Operation]] = {}
    for op in operations:
        parent = op.parent_id if op.parent_id in known else None
        children.setdefault(parent, []).append(op)
    ordered: list[tuple[Operation, int]] = []
    stack: list[tuple[Operation, int]] = [(op, 0) for op in reversed(children.get(None, []))]
    while stack:
        op, depth = stack.pop()
        ordered.append((op, depth))
        stack.extend((child, depth + 1) for child in reversed(children.get(op.operation_id, [])))
    return ordered


def operation_views(execution_id: Any) -> list[OperationView]:
    """The execution's operations, depth-first in journal order (one query)."""
    operations = list(Operation.objects.filter(execution_id=execution_id).order_by("id"))
    return [
        OperationView(
            operation_id=op.operation_id,
            parent_id=op.parent_id,
            depth=depth,
            type=op.type,
            sub_type=op.sub_type,
            name=op.name,
            status=op.status,
            attempt=op.attempt,
            started_at=op.started_at,
            ended_at=op.ended_at,
            result=op.result,
            error=op.error,
            callback_id=op.callback_id,
        )
        for op, depth in _in_order(operations)
    ]


def timeline(execution: Execution) -> list[TimelineRow]:
    """The admin's rows: depth-first in journal order, with previews of results and errors."""
    rows = []
    for op, depth in _in_order(list(execution.operations.order_by("id"))):
        duration = op.ended_at - op.started_at if op.started_at and op.ended_at else None
        rows.append(TimelineRow(op, depth, duration, preview(op.result), op.error, stack_trace(op.error)))
    return rows
