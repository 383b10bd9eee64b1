"""Running invocations on RQ: the dispatch backend, the timers, and the job (the worker classes
that run it are in durable.rq_worker).

The database holds every wake-up time; Redis only carries nudges. A wake-up that is due becomes
an RQ job at once; one within the horizon waits in a Redis sorted set of timers (scored by its
time to the millisecond) until a worker's timer thread moves it to the queue, within about
`TIMER_POLL_SECONDS` of its time and never before it; later ones, and any lost with Redis, are
found by the sweep. Each wake-up has a job id of its own (execution and time), so duplicates
collapse, with short result and failure ttls, so an old job never blocks a new one.

RQ's own scheduler (`enqueue_at`) was used before: it compares whole seconds and polls once a
second, so wake-ups came up to a second early (the job then napped, holding its worker) or up
to a second late. Measured in bench/workers.py: see the README.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from datetime import datetime
from typing import Any

import django_rq
import redis
from django.conf import settings
from django.db import close_old_connections
from rq.job import JobStatus
from rq.utils import as_text
from rq.utils import now as rq_now

from durable import clock, conf, store
from durable.outage import DATABASE_OUTAGE, Backoff, one_line
from durable.runtime import run_invocation

log = logging.getLogger("durable.worker")

# A finished job is deleted at once, so a later dispatch of the same wake-up is never blocked;
# a failed one stays a minute for inspection (its execution is re-dispatched under a new id).
JOB_RESULT_TTL = 0
JOB_FAILURE_TTL = 60
# A job that arrives a little before its wake-up (another machine's clock, say) naps until due.
EARLY_TOLERANCE = 1.5
# How often the worker holding the timers lock moves due wake-ups to the queue.
TIMER_POLL_SECONDS = 0.02
# Timers released per poll at most (the rest go at the next poll).
TIMER_BATCH = 500
TIMER_LOCK_KEY = "durable:timers:lock"
TIMER_LOCK_MS = 3000

# True where an overrunning invocation may end the process: a supervised worker or a work-horse.
_process_is_disposable = False


def set_process_disposable(disposable: bool) -> None:
    """Say whether an invocation past its budget may end this process (see durable.lease)."""
    global _process_is_disposable
    _process_is_disposable = disposable


_queues: dict[tuple[str, str], Any] = {}


def queue() -> Any:
    """The invocation queue; one Redis connection pool per process and queue settings."""
    name = conf.get("QUEUE")
    key = (name, repr(settings.RQ_QUEUES.get(name)))
    if key not in _queues:
        # commit_mode "auto": dispatch already happens after the transaction commits.
        _queues[key] = django_rq.get_queue(name, commit_mode="auto")
    return _queues[key]


def job_id(execution_id: str, when: datetime, generation: int = 0) -> str:
    suffix = f"-g{generation}" if generation else ""
    return f"durable-{execution_id}-{int(when.timestamp() * 1000)}{suffix}"


def timers_key(queue_name: str) -> str:
    """The sorted set of wake-ups waiting for their time: member a job id, score its Unix time."""
    return f"durable:timers:{queue_name}"


# Queue wake-ups in one round trip whatever their number: for each, unless its job is already
# waiting in the queue or running, save the job's hash as RQ would and push its id, and register
# the queue, as RQ's unique enqueue does in three round trips per job. A job whose hash exists is
# waiting or running, unless RQ failed it or its id sits in the intermediate queue: a worker took
# it and has not taken the lease yet (the sweep only re-dispatches executions whose lease is free),
# so that worker was killed, or is about to run it and a second delivery is harmless (the lease
# decides). Such a job is moved back to the queue at once instead of waiting REDISPATCH_GRACE.
# KEYS: rq:queues, the queue's key, its intermediate queue's key.
# ARGV: then per job: its key, its id, n, n field/value pairs.
_ENQUEUE = """
redis.call('SADD', KEYS[1], KEYS[2])
local queued, i = 0, 1
while i <= #ARGV do
  local key, id, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local taken = redis.call('LREM', KEYS[3], 1, id) > 0
  if taken or redis.call('EXISTS', key) == 0 or redis.call('HGET', key, 'status') == 'failed' then
    redis.call('DEL', key)
    redis.call('HSET', key, unpack(ARGV, i + 3, i + 2 + 2 * n))
    redis.call('RPUSH', KEYS[2], id)
    queued = queued + 1
  end
  i = i + 3 + 2 * n
end
return queued
"""
_enqueue_scripts: dict[int, Any] = {}


def _job_fields(q: Any, execution_id: str, job_id_: str) -> list[Any]:
    """The hash of an invocation job, as RQ's own enqueue would save it."""
    job = q.job_class.create(
        INVOKE,
        args=(execution_id,),
        connection=q.connection,
        id=job_id_,
        result_ttl=JOB_RESULT_TTL,
        failure_ttl=JOB_FAILURE_TTL,
        # A backstop only: the lease keeper stops an overrunning invocation at its own budget.
        timeout=2 * max(conf.get("INVOCATION_TIMEOUT"), 900),
        description=f"durable invocation of {execution_id}",
        origin=q.name,
        serializer=q.serializer,
        status=JobStatus.QUEUED,
    )
    job.enqueued_at = rq_now()
    fields: list[Any] = []
    for name, value in job.to_dict().items():
        if value is not None:
            fields += (name, value)
    return fields


def enqueue_wake_ups(wake_ups: list[tuple[str, str]]) -> int:
    """Queue invocation jobs (execution id, job id) not already in Redis, in one round trip;
    returns how many were queued."""
    if not wake_ups:
        return 0
    q = queue()
    script = _enqueue_scripts.get(id(q))
    if script is None:
        script = _enqueue_scripts[id(q)] = q.connection.register_script(_ENQUEUE)
    args: list[Any] = []
    for execution_id, job_id_ in wake_ups:
        fields = _job_fields(q, execution_id, job_id_)
        args += (q.job_class.key_for(job_id_), job_id_, len(fields) // 2, *fields)
    return int(script(keys=[q.redis_queues_keys, q.key, q.intermediate_queue_key], args=args))


def dispatch(execution_id: str, when: datetime, generation: int = 0) -> None:
    """The DISPATCHER backend: queue (or schedule) an invocation of `execution_id` at `when`.

    `generation` > 0 gives a wake-up that is long overdue a new job id, in case the first job
    for it is stuck in Redis (its worker killed before it took the lease).
    """
    dispatch_many([(execution_id, when, generation)])


def dispatch_many(wake_ups: list[tuple[str, datetime, int]]) -> None:
    """`dispatch` for many wake-ups at once: one round trip to Redis in all."""
    now = clock.now()
    horizon = conf.get("SCHEDULE_HORIZON")
    due: list[tuple[str, str]] = []
    timers: dict[str, float] = {}
    for execution_id, when, generation in wake_ups:
        delay = (when - now).total_seconds()
        if delay > horizon:
            continue  # far in the future: the sweep finds it when it is due
        wake_up = job_id(execution_id, when, generation)
        if delay <= 0:
            due.append((execution_id, wake_up))
        else:
            timers[wake_up] = when.timestamp()
    try:
        if due:
            enqueue_wake_ups(due)
        if timers:
            q = queue()
            q.connection.zadd(timers_key(q.name), timers)
    except redis.RedisError as exc:
        # Losing a nudge loses nothing: the sweep re-dispatches what is due.
        log.warning("could not dispatch %d wake-up(s) to Redis (%s); the sweep will", len(wake_ups), exc)


dispatch.many = dispatch_many  # type: ignore[attr-defined]


def execution_of(job_id_: str) -> str:
    return job_id_.removeprefix("durable-")[:36]  # job_id(): "durable-<uuid>-<ms>[-g<n>]"


# Take the timers that are due out of the set, atomically, so two pollers never both take one.
_DUE_TIMERS = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""


def release_due_timers(connection: Any, script: Any = None) -> int:
    """Move the wake-ups whose time has come from the timers set to the queue; returns how many.

    A wake-up taken from the set but not enqueued (Redis failing in between) is a lost nudge;
    the sweep re-dispatches it once it is overdue by REDISPATCH_GRACE.
    """
    q = queue()
    due = (script or connection.register_script(_DUE_TIMERS))(
        keys=[timers_key(q.name)], args=[repr(clock.now().timestamp()), TIMER_BATCH]
    )
    wake_ups = [as_text(member) for member in due]
    enqueue_wake_ups([(execution_of(wake_up), wake_up) for wake_up in wake_ups])
    return len(wake_ups)


# Take or keep the timers lock: one poller at a time, across processes and machines.
_TIMER_LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
"""


class TimerPoller(threading.Thread):
    """A worker's timer thread: while it holds the timers lock, it moves due wake-ups to the
    queue every TIMER_POLL_SECONDS; otherwise it checks now and then whether the holder died."""

    def __init__(self, connection: Any, name: str) -> None:
        super().__init__(name="durable-timers", daemon=True)
        self.connection = connection
        self.holder = name
        self._stopped = threading.Event()
        self._lock = connection.register_script(_TIMER_LOCK)
        self._due = connection.register_script(_DUE_TIMERS)

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        holding, checked = False, 0.0
        outage = Backoff("Redis (for the timer thread)", log)
        while not self._stopped.wait(TIMER_POLL_SECONDS if holding else 0.5):
            try:
                now = time.monotonic()
                if not holding or now - checked >= TIMER_LOCK_MS / 3000:  # renew at a third of its life
                    holding = bool(self._lock(keys=[TIMER_LOCK_KEY], args=[self.holder, TIMER_LOCK_MS]))
                    checked = now
                if holding:
                    release_due_timers(self.connection, self._due)
                outage.recovered()
            except redis.RedisError as exc:
                holding = False
                outage.pause(exc)  # due wake-ups it could not move are the sweep's meanwhile
            except Exception:
                holding = False
                log.exception("timer poll failed; will try again")


INVOKE = f"{__name__}.invoke"


class DatabaseUnreachableError(Exception):
    """The invocation could not take its execution's lease: the database did not answer. No handler
    code ran, so the wake-up is still good: it is run once the database is back."""


def invoke(execution_id: str) -> str:
    """The RQ job: one invocation (after a short nap if it was released a little early).

    While the database cannot be reached, it waits for it (bounded back-off) and then runs: an
    outage does not use the wake-up up. (The engine's in-process worker puts the wake-up back on
    the queue instead and waits before taking any job.)
    """
    backoff = Backoff("the database", log)
    while True:
        try:
            outcome = invoke_once(execution_id)
        except DatabaseUnreachableError as exc:
            backoff.pause(exc)
            continue
        backoff.recovered()
        return outcome


def invoke_once(execution_id: str) -> str:
    """One invocation; raises DatabaseUnreachableError if the lease could not be taken for an outage."""
    # Jobs are not requests: check reused connections here, as Django does per request, so a
    # restarted database costs no failed job.
    close_old_connections()
    try:
        return _invoke(execution_id)
    except DATABASE_OUTAGE as exc:
        if _raised_taking_the_lease(exc):
            raise DatabaseUnreachableError(one_line(exc)) from exc
        log.exception("invocation of %s failed; the sweep will dispatch it again", execution_id)
        return "error"
    except Exception:
        # Never fail the job: a failed job's id stays taken in Redis for a while, which would
        # hold back the sweep's re-dispatch of this wake-up. The database says what is due.
        log.exception("invocation of %s failed; the sweep will dispatch it again", execution_id)
        return "error"
    finally:
        close_old_connections()


def _raised_taking_the_lease(exc: BaseException) -> bool:
    """Whether `exc` came out of taking the lease, the invocation's first statement: only then is a
    connection error known to mean "the database is unreachable" with no handler code run. (The
    runtime raises the same error types from later statements, whose wake-up may be spent.)"""
    return any(frame.f_code is store.acquire_lease.__code__ for frame, _ in traceback.walk_tb(exc.__traceback__))


def _invoke(execution_id: str) -> str:
    outcome = run_invocation(execution_id, kill_on_budget=_process_is_disposable, wait_if_early=EARLY_TOLERANCE)
    return outcome.status or ("skipped" if not outcome.ran else "lease lost")
