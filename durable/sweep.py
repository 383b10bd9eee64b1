"""The sweep: what makes a lost Redis, a dead worker and far-off timers survivable.

It re-dispatches executions that are due, and those whose lease expired (their invocation
died), ends executions past their timeout, and times out callbacks past their deadlines. Each
query is a range scan on an index of RUNNING executions, so its cost follows the work to do,
not the number of executions waiting. Workers run it about once per SWEEP_INTERVAL seconds
across the cluster (a Redis lock, below); `manage.py durable_sweep` runs it by hand.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from django.db import connection, transaction
from django.db.models import Q, QuerySet

from durable import clock, conf, dispatch, events, signals, store
from durable.errors import ErrorObject
from durable.models import Execution, ExecutionStatus, Operation
from durable.operation.callback import timeout_error
from durable.runtime import default_owner
from durable.state import OperationStatus, OperationType

log = logging.getLogger("durable.sweep")

LOCK_KEY = "durable:sweep-lock"


@dataclass
class SweepReport:
    dispatched_due: list[str] = field(default_factory=list)
    dispatched_expired_leases: list[str] = field(default_factory=list)
    timed_out_executions: list[str] = field(default_factory=list)
    timed_out_callbacks: int = 0

    @property
    def acted(self) -> bool:
        return bool(
            self.dispatched_due
            or self.dispatched_expired_leases
            or self.timed_out_executions
            or self.timed_out_callbacks
        )

    def __str__(self) -> str:
        return (
            f"{len(self.dispatched_due)} due, {len(self.dispatched_expired_leases)} expired leases, "
            f"{len(self.timed_out_executions)} executions timed out, {self.timed_out_callbacks} callbacks timed out"
        )


def _lease_free(now: datetime) -> Q:
    return Q(lease_token__isnull=True) | Q(lease_expires_at__lt=now)


def timed_out_query(now: datetime) -> QuerySet[Execution]:
    running = Execution.objects.filter(status=ExecutionStatus.RUNNING)
    return running.filter(timeout_at__lte=now).filter(_lease_free(now))


def due_query(now: datetime) -> QuerySet[Execution]:
    running = Execution.objects.filter(status=ExecutionStatus.RUNNING)
    return running.filter(wake_at__lte=now).filter(_lease_free(now))


def expired_leases_query(now: datetime) -> QuerySet[Execution]:
    running = Execution.objects.filter(status=ExecutionStatus.RUNNING)
    return running.filter(lease_expires_at__lt=now, lease_token__isnull=False)


def sweep(*, limit: int = 1000) -> SweepReport:
    """One pass. Returns what it did."""
    now = clock.now()
    report = SweepReport()

    report.timed_out_executions = _time_out_executions(now, limit)

    grace = conf.get("REDISPATCH_GRACE")
    due = list(due_query(now).values_list("pk", "wake_at")[:limit])
    # Every execution waiting in the queue is due: the checks and the re-dispatch cost a
    # query and a round trip to Redis in all, not one per execution.
    with_expired = _with_expired_callbacks([pk for pk, _ in due], now)
    wake_ups = []
    for pk, wake_at in due:
        if pk in with_expired:
            report.timed_out_callbacks += _time_out_callbacks(str(pk), now)
        wake_at = wake_at or now
        # The wake-up's own job id: a nudge still in Redis absorbs this one. Long overdue, a new
        # id every `grace` seconds, in case its job is stuck with a worker that was killed.
        wake_ups.append((str(pk), wake_at, int((now - wake_at).total_seconds() // grace)))
        report.dispatched_due.append(str(pk))

    for pk in expired_leases_query(now).values_list("pk", flat=True)[:limit]:
        # A fresh job id: the dead invocation's job may still sit in Redis as started.
        wake_ups.append((str(pk), now, 0))
        report.dispatched_expired_leases.append(str(pk))
    dispatch.wake_many(wake_ups)
    return report


def _skip_locked(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """Rows another transaction is writing are skipped, not waited for (PostgreSQL)."""
    if connection.features.has_select_for_update_skip_locked:
        return queryset.select_for_update(skip_locked=True)
    return queryset  # SQLite: one writer at a time anyway


def _time_out_executions(now: datetime, limit: int) -> list[str]:
    error = ErrorObject("ExecutionTimedOut", "execution exceeded its timeout").to_dict()
    with transaction.atomic():
        rows = list(_skip_locked(timed_out_query(now)).values_list("pk", "function_name", "execution_name")[:limit])
        if not rows:
            return []
        ids = [str(pk) for pk, _, _ in rows]
        Execution.objects.filter(pk__in=ids).update(**store.ended(ExecutionStatus.TIMED_OUT, now, error))
        for pk, function_name, execution_name in rows:
            store.append_events(
                str(pk), [events.execution_ended(ExecutionStatus.TIMED_OUT, error=error, has_result=False, at=now)]
            )
            signals.on_commit_status_changed(
                execution_id=str(pk),
                function_name=function_name,
                execution_name=execution_name,
                status=ExecutionStatus.TIMED_OUT,
                previous_status=ExecutionStatus.RUNNING,
                error=error,
                timestamp=now,
            )
    return ids


def _expired_callbacks(now: datetime) -> QuerySet[Operation]:
    return Operation.objects.filter(type=OperationType.CALLBACK, status=OperationStatus.STARTED).filter(
        Q(callback_deadline__lte=now) | Q(heartbeat_deadline__lte=now)
    )


def _with_expired_callbacks(execution_ids: list[Any], now: datetime) -> set[Any]:
    """Which of these executions have a callback past its deadline (one query)."""
    if not execution_ids:
        return set()
    return set(_expired_callbacks(now).filter(execution_id__in=execution_ids).values_list("execution_id", flat=True))


def _time_out_callbacks(execution_id: str, now: datetime) -> int:
    """Time out the execution's callbacks past their deadlines (it has some: `_with_expired_callbacks`)."""
    expired = _expired_callbacks(now).filter(execution_id=execution_id)
    count = 0
    with transaction.atomic():
        # Lock the execution as an invocation would; skip it if one holds the lease now.
        if (
            not Execution.objects.filter(pk=execution_id, status=ExecutionStatus.RUNNING)
            .filter(_lease_free(now))
            .update(updated_at=now)
        ):
            return 0
        for op in expired:
            record = store.load_operation(execution_id, op.operation_id)
            error = timeout_error(record, now) if record else None
            # Still pending and past a deadline when this runs: a completion or heartbeat that
            # committed first wins.
            if error is None or not expired.filter(pk=op.pk).update(
                status=OperationStatus.TIMED_OUT, error=error, ended_at=now
            ):
                continue
            count += 1
            assert record is not None
            store.append_events(execution_id, [events.callback_timed_out(error, operation=record, at=now)])
    return count


# The sweep lock. Its value names the holder ("<host>:<pid> <token>") while the sweep runs and
# "done <host>:<pid>" after it, until it expires. It lives for the interval less one try and is
# kept after the sweep, not deleted: the cluster sweeps about once per SWEEP_INTERVAL however many
# workers there are (a deleted lock let every worker sweep every interval), and a sweeper killed
# mid-sweep holds it no longer than that. Workers try LOCK_TRIES times per interval, so sweeps
# are at most one interval apart while any worker is between jobs, and at least seven eighths of
# one apart (a lone worker sweeps a little more often than once per interval, as it did before).
#
# The lock is not renewed while a sweep runs: a sweep that outlives it (a database so slow that
# three indexed queries take longer than the interval) may overlap the next one. That is
# harmless: every write of the sweep is conditional on the row still being as it was read (the
# first committer wins; the loser writes nothing), and what it dispatches is idempotent (a job
# id per wake-up; the lease decides who runs). A renewal thread would instead let a sweeper stuck
# on the database keep everyone else from sweeping.
LOCK_TRIES = 8

# Take the lock if no sweep is running (it is free, or its holder's sweep is done).
_TAKE_UNLESS_RUNNING = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, 5) ~= 'done ' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
"""
# Mark the sweep done, keeping the lock's time to live, if the lock is still ours.
_DONE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
end
return 0
"""


def lock_try_seconds() -> float:
    """How often a worker tries for the sweep lock."""
    return float(conf.get("SWEEP_INTERVAL")) / LOCK_TRIES


def sweep_with_lock(connection: Any, *, periodic: bool = False) -> SweepReport | None:
    """Sweep unless another sweep is running; None if it was skipped.

    `periodic` (the workers): skip also while the lock of a sweep that ended is still alive, so the
    cluster sweeps about once per SWEEP_INTERVAL.
    """
    holder = default_owner()
    running = f"{holder} {secrets.token_hex(8)}"
    ttl_ms = max(1, int(1000 * (lock_try_seconds() * (LOCK_TRIES - 1))))
    try:
        if periodic:
            taken = connection.set(LOCK_KEY, running, nx=True, px=ttl_ms)
        else:
            taken = connection.register_script(_TAKE_UNLESS_RUNNING)(keys=[LOCK_KEY], args=[running, ttl_ms])
        if not taken:
            return None
    except redis.RedisError as exc:
        log.warning("sweep skipped: Redis unavailable (%s)", exc)
        return None
    try:
        return sweep()
    finally:
        with contextlib.suppress(redis.RedisError):  # if Redis is away, the lock expires on its own
            connection.register_script(_DONE)(keys=[LOCK_KEY], args=[running, f"done {holder}"])
