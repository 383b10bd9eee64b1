"""The journal as a timeline for people: operations in order, nested by parent context."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
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


def timeline(execution: Execution) -> list[TimelineRow]:
    """Depth-first in journal order: each context is followed by what ran inside it."""
    operations = list(execution.operations.order_by("id"))
    known = {op.operation_id for op in operations}
    children: dict[str | None, list[Operation]] = {}
    for op in operations:
        parent = op.parent_id if op.parent_id in known else None
        children.setdefault(parent, []).append(op)
    rows: list[TimelineRow] = []
    stack: list[tuple[Operation, int]] = [(op, 0) for op in reversed(children.get(None, []))]
    while stack:
        op, depth = stack.pop()
        duration = op.ended_at - op.started_at if op.started_at and op.ended_at else None
        rows.append(TimelineRow(op, depth, duration, preview(op.result), op.error, stack_trace(op.error)))
        stack.extend((child, depth + 1) for child in reversed(children.get(op.operation_id, [])))
    return rows
