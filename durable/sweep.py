"""The sweep: what makes a lost Redis, a dead worker and far-off timers survivable.

It re-dispatches executions that are due, and those whose lease expired (their invocation
died), ends executions past their timeout, and times out callbacks past their deadlines. Each
query is a range scan on an index of RUNNING executions, so its cost follows the work to do,
not the number of executions waiting; the queries and writes are the journal store's
(`durable.store`). Workers run it about once per SWEEP_INTERVAL seconds
across the cluster (a Redis lock, below); `manage.py durable_sweep` runs it by hand. After each
sweep the event outbox's delivery pass runs too (`deliver_events`, durable.sinks).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import redis

from durable import clock, conf, dispatch, events, metrics, outbox, sinks
from durable.errors import ErrorObject
from durable.models import ExecutionStatus
from durable.operation.callback import timeout_error
from durable.runtime import default_owner
from durable.sinks import DeliveryReport
from durable.store import children, journal_store

log = logging.getLogger("durable.sweep")

LOCK_KEY = "durable:sweep-lock"


@dataclass
class SweepReport:
    dispatched_due: list[str] = field(default_factory=list)
    dispatched_expired_leases: list[str] = field(default_factory=list)
    timed_out_executions: list[str] = field(default_factory=list)
    timed_out_callbacks: int = 0
    events: DeliveryReport | None = None

    @property
    def acted(self) -> bool:
        return bool(
            self.dispatched_due
            or self.dispatched_expired_leases
            or self.timed_out_executions
            or self.timed_out_callbacks
            or (self.events is not None and bool(self.events.attempted or self.events.purged))
        )

    def __str__(self) -> str:
        return (
            f"{len(self.dispatched_due)} due, {len(self.dispatched_expired_leases)} expired leases, "
            f"{len(self.timed_out_executions)} executions timed out, {self.timed_out_callbacks} callbacks timed out"
            + (f"; {self.events}" if self.events is not None else "")
        )


@metrics.SWEEP_DURATION.time()
def sweep(*, limit: int = 1000) -> SweepReport:
    """One pass. Returns what it did."""
    now = clock.now()
    report = SweepReport()
    db = journal_store()

    error = ErrorObject("ExecutionTimedOut", "execution exceeded its timeout").to_dict()
    parents: list[str | None] = []

    def end_invokes(ended_ids: list[str]) -> None:
        # An invoked execution's time-out ends its parent's invoke in the same transaction.
        parents.extend(children.complete_parent_operation(c, now) for c in children.with_parents(ended_ids))

    def timed_out(execution_id: str, function_name: str, execution_name: str, started_at: Any) -> list[Any]:
        # Each time-out's event, written with it (sent after the commit: durable.sinks).
        return [
            outbox.status_change(
                execution_id=execution_id,
                function_name=function_name,
                execution_name=execution_name,
                status=ExecutionStatus.TIMED_OUT,
                previous_status=ExecutionStatus.RUNNING,
                started_at=started_at,
                at=now,
                error=error,
            )
        ]

    ended = db.time_out_executions(
        now,
        limit,
        error,
        lambda: [events.execution_ended(ExecutionStatus.TIMED_OUT, error=error, has_result=False, at=now)],
        end_invokes,
        timed_out,
    )
    dispatch.wake_many([(parent, now, 0) for parent in parents if parent is not None])
    report.timed_out_executions = [execution_id for execution_id, _, _ in ended]

    grace = conf.get("REDISPATCH_GRACE")
    due = db.due(now, limit)
    # Every execution waiting in the queue is due: the checks and the re-dispatch cost a
    # query and a round trip to Redis in all, not one per execution.
    with_expired = db.with_expired_callbacks([pk for pk, _ in due], now)
    wake_ups = []
    for pk, wake_at in due:
        if pk in with_expired:
            report.timed_out_callbacks += db.time_out_callbacks(
                str(pk),
                now,
                lambda record: timeout_error(record, now),
                lambda record, error: events.callback_timed_out(error, operation=record, at=now),
            )
        wake_at = wake_at or now
        # The wake-up's own job id: a nudge still in Redis absorbs this one. Long overdue, a new
        # id every `grace` seconds, in case its job is stuck with a worker that was killed.
        wake_ups.append((str(pk), wake_at, int((now - wake_at).total_seconds() // grace)))
        report.dispatched_due.append(str(pk))

    for pk in db.expired_leases(now, limit):
        # A fresh job id: the dead invocation's job may still sit in Redis as started.
        wake_ups.append((str(pk), now, 0))
        report.dispatched_expired_leases.append(str(pk))
    dispatch.wake_many(wake_ups)
    return report


def deliver_events() -> DeliveryReport | None:
    """The outbox's pass (durable.sinks), after a sweep: due deliveries retried, for at most half
    an interval, and delivered events past retention deleted. None if it failed (logged)."""
    try:
        return sinks.deliver_due(seconds=lock_try_seconds() * LOCK_TRIES / 2)
    except Exception:
        log.exception("event delivery pass failed; will try again")
        return None


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
        report = sweep()
        report.events = deliver_events()
        return report
    finally:
        with contextlib.suppress(redis.RedisError):  # if Redis is away, the lock expires on its own
            connection.register_script(_DONE)(keys=[LOCK_KEY], args=[running, f"done {holder}"])
