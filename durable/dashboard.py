"""The operations page's numbers: executions by status over time, step latency, the backlog now,
and failures by function, over the last hours or days.

Every query is bounded by a time window on an indexed column (executions' `created_at`, history
events' `(timestamp, event_type)`) and aggregated by the database (COUNT ... GROUP BY); step
latency pairs each attempt's start with its end from at most MAX_LATENCY_EVENTS events and takes
percentiles here, as SQLite has no percentile function.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour

from durable import clock
from durable.listing import WaitKind, on_a_worker, waits_on
from durable.models import CHARTED_EVENTS, Execution, ExecutionStatus, HistoryEvent

# The windows the page offers: (key, length, bucket).
WINDOWS = {"24h": (timedelta(hours=24), "hour"), "7d": (timedelta(days=7), "day"), "30d": (timedelta(days=30), "day")}
DEFAULT_WINDOW = "24h"
MAX_LATENCY_EVENTS = 50_000
_ATTEMPT_ENDS = ("StepSucceeded", "StepFailed")
_FAILED_ENDS = ("ExecutionFailed", "ExecutionTimedOut")
BACKLOG_WAITS = (WaitKind.TIMER, WaitKind.CALLBACK, WaitKind.RETRY, WaitKind.INVOKE)


@dataclass(frozen=True)
class Latency:
    bucket: datetime
    count: int
    p50: float  # seconds
    p95: float


@dataclass(frozen=True)
class Dashboard:
    window: str
    since: datetime
    now: datetime
    buckets: list[datetime]
    by_status: dict[datetime, dict[str, int]]
    latency: list[Latency]
    backlog: dict[str, int]
    failures: list[tuple[str, int]]
    latency_sampled: bool


def dashboard(window: str = DEFAULT_WINDOW, now: datetime | None = None) -> Dashboard:
    """The page's numbers for the last `window` (a key of WINDOWS; another falls back to 24h)."""
    if window not in WINDOWS:
        window = DEFAULT_WINDOW
    length, unit = WINDOWS[window]
    now = now or clock.now()
    since = _floor(now - length, unit) + _step(unit)
    buckets = [since + i * _step(unit) for i in range(int(length / _step(unit)))]
    latency, sampled = step_latency(since, unit)
    return Dashboard(
        window=window,
        since=since,
        now=now,
        buckets=buckets,
        by_status=executions_by_status(since, unit),
        latency=latency,
        backlog=backlog(now),
        failures=failures_by_function(since),
        latency_sampled=sampled,
    )


def executions_by_status(since: datetime, unit: str) -> dict[datetime, dict[str, int]]:
    """Executions started in each bucket since `since`, by their status now (one GROUP BY)."""
    trunc = TruncHour if unit == "hour" else TruncDay
    rows = (
        Execution.objects.filter(created_at__gte=since)
        .annotate(bucket=trunc("created_at", tzinfo=UTC))
        .values("bucket", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    found: dict[datetime, dict[str, int]] = defaultdict(dict)
    for row in rows:
        found[row["bucket"]][row["status"]] = row["n"]
    return dict(found)


def backlog(now: datetime) -> dict[str, int]:
    """RUNNING executions now: due (a wake-up in the past and no worker on it: work waiting for
    a worker), on a worker, and waiting for a timer, a callback, a retry or an invoked
    execution. One query (COUNT ... FILTER with EXISTS subqueries on the journal's index)."""
    running = Execution.objects.filter(status=ExecutionStatus.RUNNING)
    leased = on_a_worker(now)
    counts = {
        "due": Count("pk", filter=Q(wake_at__lte=now) & ~leased),
        "on_worker": Count("pk", filter=leased),
        **{kind: Count("pk", filter=Q(waits_on(kind))) for kind in BACKLOG_WAITS},
    }
    return dict(running.aggregate(**counts))


def failures_by_function(since: datetime) -> list[tuple[str, int]]:
    """Executions that failed or timed out since `since`, by function, most first (from their
    history's end events: the (timestamp, event_type) index)."""
    rows = (
        failure_events(since)
        .values(function=F("execution__function_name"))
        .annotate(n=Count("pk"))
        .order_by("-n", "function")[:20]
    )
    return [(row["function"], row["n"]) for row in rows]


def failure_events(since: datetime) -> QuerySet[HistoryEvent]:
    """The history's failed and timed-out ends since `since` (a range of its time index)."""
    return _charted().filter(event_type__in=_FAILED_ENDS, timestamp__gte=since)


def attempt_events(since: datetime) -> QuerySet[HistoryEvent]:
    """Step attempts' starts and ends since `since`, newest first (the time index read backwards,
    no sort)."""
    return (
        _charted()
        .filter(event_type__in=("StepStarted", *_ATTEMPT_ENDS), timestamp__gte=since, operation_id__isnull=False)
        .order_by("-timestamp")
    )


def _charted() -> QuerySet[HistoryEvent]:
    """The events the charts' index holds, its condition repeated word for word (LiteralIn)."""
    return HistoryEvent.objects.filter(event_type__literal_in=CHARTED_EVENTS)


def step_latency(since: datetime, unit: str) -> tuple[list[Latency], bool]:
    """p50 and p95 of step attempts (from StepStarted to the attempt's StepSucceeded or
    StepFailed) by the bucket the attempt ended in; True when the window held more events
    than are read (the newest MAX_LATENCY_EVENTS are)."""
    rows = list(
        attempt_events(since).values_list("execution_id", "operation_id", "event_type", "timestamp", "started_at")[
            : MAX_LATENCY_EVENTS + 1
        ]
    )
    sampled = len(rows) > MAX_LATENCY_EVENTS
    started: dict[tuple[object, str], datetime] = {}
    durations: dict[datetime, list[float]] = defaultdict(list)
    for execution_id, operation_id, event_type, at, began in sorted(rows[:MAX_LATENCY_EVENTS], key=lambda r: r[3]):
        key = (execution_id, str(operation_id))
        if began is not None:  # an attempt's start and end in one row
            started.pop(key, None)
            durations[_floor(at, unit)].append((at - began).total_seconds())
        elif event_type == "StepStarted":
            started[key] = at
        elif key in started:
            durations[_floor(at, unit)].append((at - started.pop(key)).total_seconds())
    return [
        Latency(bucket, len(values), _percentile(values, 50), _percentile(values, 95))
        for bucket, values in sorted(durations.items())
    ], sampled


def _percentile(values: list[float], pct: int) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def _step(unit: str) -> timedelta:
    return timedelta(hours=1) if unit == "hour" else timedelta(days=1)


def _floor(moment: datetime, unit: str) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if unit == "day" else moment
