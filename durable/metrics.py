"""Prometheus metrics the engine's processes count as they work (`/metrics` serves them).

Counters and histograms live here, one call per event at the place it happens (an invocation's
end, a step's attempt, a sweep). What is true of the journal at a given moment (executions
running, waiting and due, callbacks waiting, queue depth) is not counted here: it is read from
the database and Redis when `/metrics` is scraped (`durable.scrape`), so it is right however many
processes there are and whichever of them died.

Multiprocess mode: with PROMETHEUS_MULTIPROC_DIR in the environment of every process (gunicorn's
workers, the worker supervisor's children), each process writes its values to files there and a
scrape adds them up. Files are named after the host and the process id, so processes of several
containers can share one directory. Without the variable, each process counts in memory and a
scrape sees its own process only (enough for `runserver` and tests).

Labels stay bounded: step, function and sink names are the project's strings, so each label
takes at most MAX_LABEL_VALUES distinct values per process (later ones count as "other"), and
no execution id is ever a label. This module imports no Django: the replay core calls it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Histogram, values
from prometheus_client.multiprocess import mark_process_dead

# Distinct values one label takes in one process; the rest are counted as OTHER (and no name
# as UNNAMED).
MAX_LABEL_VALUES = 100
MAX_LABEL_LENGTH = 100
OTHER = "other"
UNNAMED = "unnamed"


_HOST = socket.gethostname().replace("_", "-")  # prometheus_client splits file names on "_"


def process_id(pid: int | None = None) -> str:
    """This process's name in the multiprocess directory: host and pid (containers reuse pids).
    prometheus_client asks for it at every write (to notice a fork): keep it cheap."""
    return f"{_HOST}-{os.getpid() if pid is None else pid}"


MULTIPROCESS = values.ValueClass is not values.MutexValue
if MULTIPROCESS:  # prometheus_client saw PROMETHEUS_MULTIPROC_DIR when it was imported
    values.ValueClass = values.MultiProcessValue(process_id)  # type: ignore[no-untyped-call]


def process_ended(pid: int) -> None:
    """Tell the multiprocess directory that a process we started has ended (its supervisor calls
    this; gunicorn's child_exit hook too)."""
    if MULTIPROCESS:
        mark_process_dead(process_id(pid))  # type: ignore[no-untyped-call]


class BoundedLabel:
    """A label's values: the first MAX_LABEL_VALUES distinct ones as they are, then OTHER."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit = limit
        self.seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        if not value:
            return UNNAMED
        value = value[:MAX_LABEL_LENGTH]
        if value in self.seen:
            return value
        with self._lock:
            if len(self.seen) < self.limit:
                self.seen.add(value)
                return value
        return OTHER


class Children:
    """`metric.labels(label(value), *rest)` per value, remembered: an observation then costs a
    dict lookup, not prometheus_client's label checks and lock (the memory is bounded too).
    `rest`: the other labels' values, from small fixed sets (a status, an outcome)."""

    def __init__(self, metric: Any, label: BoundedLabel) -> None:
        self.metric = metric
        self.label = label
        self.cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, value: str | None, *rest: str) -> Any:
        key = (value or UNNAMED, *rest)
        child = self.cache.get(key)
        if child is None:
            bounded = (self.label(value), *rest)
            child = self.cache.get(bounded) or self.metric.labels(*bounded)
            if len(self.cache) < 16 * self.label.limit:
                self.cache[key] = self.cache[bounded] = child
        return child


function_label = BoundedLabel()
step_label = BoundedLabel()
sink_label = BoundedLabel()

# Seconds: from a millisecond step to an invocation at Lambda's 15-minute budget.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
# How late a wake-up ran: the timer poll is 20 ms; the sweep's re-dispatch takes seconds.
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

EXECUTIONS_STARTED = Counter("durable_executions_started", "Executions started.", ["function"])
EXECUTIONS_ENDED = Counter("durable_executions_ended", "Executions ended, by final status.", ["function", "status"])
INVOCATIONS = Counter(
    "durable_invocations", "Invocations run, by how they left the execution.", ["function", "outcome"]
)
INVOCATION_DURATION = Histogram(
    "durable_invocation_duration_seconds", "Time an invocation ran.", ["function"], buckets=DURATION_BUCKETS
)
STEP_DURATION = Histogram(
    "durable_step_duration_seconds", "Time a step's attempt ran its body.", ["step"], buckets=DURATION_BUCKETS
)
STEP_RETRIES = Counter("durable_step_retries", "Failed step attempts that were scheduled to retry.", ["step"])
LEASE_LOSSES = Counter("durable_lease_losses", "Invocations that lost their lease and stopped writing.")
CALLBACK_RESUME = Histogram(
    "durable_callback_resume_seconds",
    "From a callback's completion to the invocation that resumes its execution.",
    buckets=LATENESS_BUCKETS,
)
TIMER_LATENESS = Histogram(
    "durable_timer_lateness_seconds",
    "How late an invocation woken by a wait (kind wait) or a step retry (kind retry) began.",
    ["kind"],
    buckets=LATENESS_BUCKETS,
)
SWEEP_DURATION = Histogram("durable_sweep_duration_seconds", "Time a sweep took.", buckets=DURATION_BUCKETS)
SINK_DELIVERIES = Counter("durable_sink_deliveries", "Deliveries tried to a webhook or event sink.", ["sink"])
SINK_FAILURES = Counter("durable_sink_delivery_failures", "Deliveries to a sink that failed.", ["sink"])
_step_durations = Children(STEP_DURATION, step_label)
_started = Children(EXECUTIONS_STARTED, function_label)
_ended = Children(EXECUTIONS_ENDED, function_label)
_invocations = Children(INVOCATIONS, function_label)
_invocation_durations = Children(INVOCATION_DURATION, function_label)
_deliveries = Children(SINK_DELIVERIES, sink_label)
_delivery_failures = Children(SINK_FAILURES, sink_label)


def execution_started(function_name: str) -> None:
    _started(function_name).inc()


def execution_ended(function_name: str, status: str) -> None:
    _ended(function_name, str(status)).inc()


def invocation_ended(function_name: str, started: float, status: str | None, ran: bool) -> None:
    """`started`: time.perf_counter() when it began. Outcome: the execution's status after it
    (RUNNING: it suspended), "skipped" (its lease was held elsewhere) or "unrecorded"."""
    outcome = str(status) if status else ("unrecorded" if ran else "skipped")
    _invocations(function_name, outcome).inc()
    if ran:
        _invocation_durations(function_name).observe(time.perf_counter() - started)


def step_ran(name: str | None, seconds: float) -> None:
    _step_durations(name).observe(seconds)


def step_retry(name: str | None) -> None:
    STEP_RETRIES.labels(step_label(name)).inc()


def lease_lost() -> None:
    LEASE_LOSSES.inc()


def resumed(wake_at: datetime | None, operations: Iterable[Any], now: datetime) -> None:
    """An invocation began at `now` for a wake-up at `wake_at`: what woke it (a wait, a step's
    retry, a callback completed at that time) says which latency to observe, once each."""
    if wake_at is None:
        return
    seen: set[str] = set()
    for record in operations:
        kind = _woken_by(record, wake_at)
        if kind is None or kind in seen:
            continue
        seen.add(kind)
        late = max(0.0, (now - wake_at).total_seconds())
        if kind == "callback":
            CALLBACK_RESUME.observe(late)
        else:
            TIMER_LATENESS.labels(kind).observe(late)


def _woken_by(record: Any, wake_at: datetime) -> str | None:
    kind, status = str(record.type), str(record.status)
    if kind == "WAIT" and status == "STARTED" and record.wait_until == wake_at:
        return "wait"
    if status == "PENDING" and record.next_attempt_at == wake_at:
        return "retry"
    if kind == "CALLBACK" and status in ("SUCCEEDED", "FAILED") and record.ended_at == wake_at:
        return "callback"
    return None


def sink_delivery(sink: str, ok: bool) -> None:
    """Count one delivery to a webhook or event sink (`sink` names it: "webhook", "eventbridge")."""
    _deliveries(sink).inc()
    if not ok:
        _delivery_failures(sink).inc()
