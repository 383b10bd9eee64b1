"""What `/metrics` answers: the processes' counters, and gauges read from the journal and Redis.

The gauges are computed when Prometheus scrapes, by a collector, rather than kept by processes:
how many executions run and what they wait for is a fact of the database, right after any crash
and whichever process changed it. Two aggregate queries over RUNNING executions (the status
indexes) and two Redis commands per scrape. A source that does not answer is reported by
`durable_scrape_source_up{source}` 0 and its gauges are left out; the scrape itself succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import redis
from django.db import DatabaseError
from django.db.models import Count, Min, Q
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from rq import Queue

from durable import clock, conf, health
from durable.models import Execution, ExecutionStatus, Operation
from durable.rq.jobs import timers_key

log = logging.getLogger("durable.metrics")

# What a RUNNING execution that no invocation holds waits for: its open operations of this kind.
WAITING_FOR = {
    "timer": Q(type="WAIT", status="STARTED"),
    "callback": Q(type="CALLBACK", status="STARTED"),
    "invoke": Q(type="CHAINED_INVOKE", status="STARTED"),
    "retry": Q(status="PENDING", next_attempt_at__isnull=False),
}


def render() -> bytes:
    """The text exposition of every metric (Prometheus's format 0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    directory = conf.get("METRICS_MULTIPROC_DIR")
    if directory:
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    registry.register(JournalCollector())
    return generate_latest(registry)


class _ThisProcess(Collector):
    """Without a multiprocess directory: this process's own metrics."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class JournalCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("durable_scrape_source_up", "Whether a source answered this scrape.", labels=["source"])
        try:
            yield from _journal_gauges()
            up.add_metric(["database"], 1)
        except DatabaseError as exc:
            log.warning("metrics: the database did not answer (%s)", exc)
            up.add_metric(["database"], 0)
        try:
            yield from _queue_gauges()
            up.add_metric(["redis"], 1)
        except redis.RedisError as exc:
            log.warning("metrics: Redis did not answer (%s)", exc)
            up.add_metric(["redis"], 0)
        yield up


def _journal_gauges() -> list[Metric]:
    now = clock.now()
    lease_free = Q(lease_token__isnull=True) | Q(lease_expires_at__lt=now)
    executions = Execution.objects.filter(status=ExecutionStatus.RUNNING).aggregate(
        running=Count("pk"),
        invoking=Count("pk", filter=~lease_free),
        due=Count("pk", filter=Q(wake_at__lte=now) & lease_free),
        oldest_due=Min("wake_at", filter=Q(wake_at__lte=now) & lease_free),
    )
    op_lease_free = Q(execution__lease_token__isnull=True) | Q(execution__lease_expires_at__lt=now)
    operations = Operation.objects.filter(
        execution__status=ExecutionStatus.RUNNING, status__in=("STARTED", "PENDING")
    ).aggregate(
        callbacks=Count("pk", filter=WAITING_FOR["callback"]),
        **{
            kind: Count("execution_id", distinct=True, filter=condition & op_lease_free)
            for kind, condition in WAITING_FOR.items()
        },
    )
    running = GaugeMetricFamily("durable_executions_running", "Executions whose status is RUNNING.")
    running.add_metric([], executions["running"])
    waiting = GaugeMetricFamily(
        "durable_executions_waiting",
        "RUNNING executions by what they wait for: in an invocation now (running), or, held by none, "
        "an open wait (timer), callback, invoke or step retry; one with several counts under each.",
        labels=["waiting_for"],
    )
    waiting.add_metric(["running"], executions["invoking"])
    for kind in WAITING_FOR:
        waiting.add_metric([kind], operations[kind])
    callbacks = GaugeMetricFamily("durable_callbacks_waiting", "Callbacks of RUNNING executions not completed yet.")
    callbacks.add_metric([], operations["callbacks"])
    due = GaugeMetricFamily("durable_due_backlog", "RUNNING executions due now that no invocation holds.")
    due.add_metric([], executions["due"])
    oldest = GaugeMetricFamily("durable_due_backlog_age_seconds", "How long the longest-due of them has been due.")
    oldest_due = executions["oldest_due"]
    oldest.add_metric([], max(0.0, (now - oldest_due).total_seconds()) if oldest_due else 0.0)
    return [running, waiting, callbacks, due, oldest]


def _queue_gauges() -> list[Metric]:
    name = conf.get("QUEUE")
    client: Any = health.redis_client()
    try:
        depth = Queue(name, connection=client).count
        scheduled = client.zcard(timers_key(name))
    finally:
        client.close()
    queued = GaugeMetricFamily("durable_queue_depth", "Invocation jobs waiting in the RQ queue.", labels=["queue"])
    queued.add_metric([name], depth)
    timers = GaugeMetricFamily(
        "durable_timers_scheduled", "Wake-ups waiting in Redis for their time (timers set).", labels=["queue"]
    )
    timers.add_metric([name], scheduled)
    return [queued, timers]
