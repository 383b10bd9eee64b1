"""The journal as a timeline for people: operations in order, nested by parent context, and the
admin's drawn timeline (bars over time, waits as the gaps they are, retries as attempts)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q

from durable import clock
from durable.models import Execution, Operation, held_start

PREVIEW_CHARS = 200


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


# The drawn timeline (the admin's execution page): operations as bars over the execution's time.

# Rows drawn unless "show all" is asked for; and however much is asked for, at most this many.
TIMELINE_ROWS = 200
TIMELINE_MAX_ROWS = 5000
# The history events that split a step into attempts.
_ATTEMPT_EVENTS = ("StepStarted", "StepFailed")
# Operations that wait rather than work: drawn hatched, as the gaps they are.
_WAITING_TYPES = ("WAIT", "CALLBACK", "CHAINED_INVOKE")
_NICE_STEPS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800,
    3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 2592000,
)  # fmt: skip


@dataclass(frozen=True)
class Segment:
    """A stretch of one bar: `kind` is run, failed (an attempt that failed), retry (the wait
    before the next attempt), wait (a timer, a callback, an invoke) or context."""

    kind: str
    start: datetime
    end: datetime
    left: float  # percent of the track
    width: float
    text: str
    attempt: int | None = None


@dataclass(frozen=True)
class Bar:
    operation: Operation
    depth: int
    segments: list[Segment]
    attempts: int
    duration: timedelta | None
    result_preview: str
    error: dict[str, Any] | None
    stack_trace: str

    @property
    def indent_em(self) -> float:
        return min(self.depth, 12) * 1.0

    @property
    def label(self) -> str:
        op = self.operation
        return op.name or f"{op.type.lower()} {op.operation_id[:12]}"


@dataclass(frozen=True)
class Tick:
    left: float
    text: str


@dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    ticks: list[Tick]
    bars: list[Bar]
    total: int  # operations in the journal; more than len(bars) when rows were capped

    @property
    def hidden(self) -> int:
        return self.total - len(self.bars)

    @property
    def span(self) -> timedelta:
        return self.end - self.start


def build_timeline(execution: Execution, *, limit: int = TIMELINE_ROWS, now: datetime | None = None) -> Timeline:
    """The execution's operations as bars over its time, depth-first (children under their
    context), each step split into its attempts by its history events. Two queries (the
    operations, their attempt events) whatever the size; at most `limit` rows are drawn."""
    limit = max(1, min(limit, TIMELINE_MAX_ROWS))
    operations = list(execution.operations.order_by("id"))
    ordered = _in_order(operations)
    shown = ordered[:limit]
    moment = now or clock.now()
    attempts = _attempt_events(execution, {op.operation_id for op, _ in shown if op.type == "STEP"})
    spans = [(op, depth, _spans(op, attempts.get(op.operation_id, []), moment)) for op, depth in shown]
    start = execution.created_at
    ends = [end for _, _, pieces in spans for _, _, end, _, _ in pieces]
    end = max([start + timedelta(milliseconds=1), execution.ended_at or moment, *ends])
    total = (end - start).total_seconds()

    def place(t: datetime) -> float:
        return round(max(0.0, min(100.0, (t - start).total_seconds() / total * 100)), 3)

    bars = []
    for op, depth, pieces in spans:
        segments = [
            Segment(kind, a, b, place(a), round(max(place(b) - place(a), 0.25), 3), text, attempt)
            for kind, a, b, text, attempt in pieces
        ]
        duration = op.ended_at - op.started_at if op.started_at and op.ended_at else None
        counted = sum(1 for s in segments if s.kind in ("run", "failed"))
        bars.append(Bar(op, depth, segments, counted, duration, preview(op.result), op.error, stack_trace(op.error)))
    return Timeline(start, end, _ticks(total), bars, len(ordered))


AttemptEvent = tuple[str, datetime, str]  # (event type, time, what failed)


def _attempt_events(execution: Execution, step_ids: set[str]) -> dict[str, list[AttemptEvent]]:
    if not step_ids:
        return {}
    found: dict[str, list[AttemptEvent]] = {}
    rows = (
        execution.history.filter(
            Q(event_type__in=_ATTEMPT_EVENTS) | Q(started_at__isnull=False), operation_id__in=step_ids
        )
        .order_by("id")
        .values_list("operation_id", "event_type", "timestamp", "details", "started_at")
    )
    for operation_id, event_type, timestamp, details, started_at in rows:
        attempts = found.setdefault(str(operation_id), [])
        start = held_start(event_type, started_at)
        if start is not None and started_at is not None:  # the row holds the attempt's start too
            attempts.append((start, started_at, ""))
        if event_type in _ATTEMPT_EVENTS:
            attempts.append((event_type, timestamp, _failure(details)))
    return found


def _failure(details: Any) -> str:
    """A StepFailed event's error in one short line ("" for other events)."""
    error = ((details or {}).get("Error") or {}).get("Payload") or {}
    if not isinstance(error, dict) or not error:
        return ""
    return preview(f"{error.get('ErrorType', 'Error')}: {error.get('ErrorMessage', '')}", 160)


Piece = tuple[str, datetime, datetime, str, int | None]


def _spans(op: Operation, events: list[AttemptEvent], now: datetime) -> list[Piece]:
    """The pieces of one operation's bar (kind, start, end, text, attempt)."""
    if op.started_at is None:
        return []
    end = op.ended_at or now
    if op.type in _WAITING_TYPES:
        planned = op.wait_until if op.type == "WAIT" and op.ended_at is None else None
        until = max(end, planned) if planned else end
        what = {"WAIT": "wait", "CALLBACK": "callback", "CHAINED_INVOKE": "invoke"}[op.type]
        return [("wait", op.started_at, until, f"{what} {_length(until - op.started_at)}", None)]
    if op.type != "STEP":
        return [("context", op.started_at, end, _length(end - op.started_at), None)]
    pieces: list[Piece] = []
    attempt_start: datetime | None = None
    number = 0
    for event_type, at, failure in events:
        if event_type == "StepStarted":
            if pieces and pieces[-1][0] == "retry":  # the retry's wait ends when the attempt starts
                kind, a, _, _, n = pieces.pop()
                pieces.append((kind, a, at, f"retry wait {_length(at - a)}", n))
            attempt_start, number = at, number + 1
        elif attempt_start is not None:
            why = f": {failure}" if failure else ""
            pieces.append(
                (
                    "failed",
                    attempt_start,
                    at,
                    f"attempt {number} failed after {_length(at - attempt_start)}{why}",
                    number,
                )
            )
            pieces.append(("retry", at, op.next_attempt_at or at, "retry wait", number + 1))
            attempt_start = None
    if pieces and pieces[-1][0] == "retry":
        kind, a, b, _, n = pieces.pop()
        b = max(b, end) if op.status != "PENDING" else max(b, a)
        pieces.append((kind, a, b, f"retry wait {_length(b - a)}", n))
    if attempt_start is not None or not pieces:
        first = attempt_start or op.started_at
        kind = "failed" if op.status == "FAILED" else "run"
        how = {"SUCCEEDED": "succeeded after", "FAILED": "failed after", "STARTED": "running for"}.get(
            op.status, "took"
        )
        text = f"attempt {max(number, 1)} {how} {_length(end - first)}"
        pieces.append((kind, first, max(first, end), text, number or 1))
    return pieces


def _ticks(total_seconds: float) -> list[Tick]:
    """At most about eight ticks at a round step, labelled from the execution's start."""
    step = next((s for s in _NICE_STEPS if total_seconds / s <= 8), _NICE_STEPS[-1])
    ticks = []
    n = 0
    while n * step <= total_seconds + 1e-9:
        ticks.append(Tick(round(n * step / total_seconds * 100, 3), "+" + _length(timedelta(seconds=n * step))))
        n += 1
    return ticks


def _length(span: timedelta) -> str:
    """A duration as people read it: 850 ms, 4.2 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    seconds = max(span.total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    if seconds < 3600:
        minutes, rest = divmod(int(seconds), 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    if seconds < 86400:
        hours, rest = divmod(int(seconds) // 60, 60)
        return f"{hours} h" + (f" {rest} min" if rest else "")
    days, rest = divmod(int(seconds) // 3600, 24)
    return f"{days} d" + (f" {rest} h" if rest else "")
