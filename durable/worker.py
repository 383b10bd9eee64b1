"""Running invocations on RQ: the dispatch backend, the job, and the engine's worker class.

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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import django_rq
import redis
from django.conf import settings
from django.db import close_old_connections, connections
from rq import SimpleWorker, Worker
from rq.exceptions import NoSuchJobError
from rq.job import JobStatus
from rq.utils import as_text
from rq.utils import now as rq_now
from rq.worker import WorkerStatus

from durable import clock, conf, store
from durable.outage import DATABASE_OUTAGE, LONGEST_PAUSE, REDIS_OUTAGE, Backoff, database_reachable, one_line
from durable.runtime import run_invocation
from durable.sweep import lock_try_seconds, sweep_with_lock

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


def _execution_of(job_id_: str) -> str:
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
    enqueue_wake_ups([(_execution_of(wake_up), wake_up) for wake_up in wake_ups])
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
        while not self._stopped.wait(TIMER_POLL_SECONDS if holding else 0.5):
            try:
                now = time.monotonic()
                if not holding or now - checked >= TIMER_LOCK_MS / 3000:  # renew at a third of its life
                    holding = bool(self._lock(keys=[TIMER_LOCK_KEY], args=[self.holder, TIMER_LOCK_MS]))
                    checked = now
                if holding:
                    release_due_timers(self.connection, self._due)
            except redis.RedisError as exc:
                holding = False
                log.warning("timer poll failed (%s); will try again", exc)
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


def wait_for_redis(connection: Any) -> None:
    """Return once Redis answers, waiting with bounded back-off while it does not."""
    backoff = Backoff("Redis", log)
    while True:
        try:
            connection.ping()
        except REDIS_OUTAGE as exc:
            backoff.pause(exc)
            continue
        backoff.recovered()
        return


class SweepingWorkerMixin:
    """Runs the engine's sweep between jobs (and while a long job runs), one worker at a time, and
    rides out a Redis outage instead of quitting.

    RQ 3.0's `Worker.work` (checked against 3.0.0) retries only its blocking dequeue on a Redis
    connection error; one raised by its heartbeats, suspension check, maintenance or state writes
    ends the work loop ("found an unhandled exception, quitting"), and a Redis timeout anywhere
    ends it too. Each of those steps is guarded here: the outage is logged and the dequeue waits
    for Redis with bounded back-off, so a worker never exits for an outage.
    """

    connection: Any
    # RQ's own dequeue (the forking worker's) retries with back-off too: bound it as ours.
    max_connection_wait_time = LONGEST_PAUSE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # RQ's own maintenance (registries, restarting a dead scheduler) every 30 s, not 10 min.
        kwargs.setdefault("maintenance_interval", 30)
        super().__init__(*args, **kwargs)
        self._last_sweep = 0.0
        self._redis = Backoff("Redis", log)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        poller = TimerPoller(self.connection, self.name)  # type: ignore[attr-defined]
        poller.start()
        try:
            return bool(super().work(*args, **kwargs))  # type: ignore[misc]
        finally:
            poller.stop()

    @property
    def dequeue_timeout(self) -> int:
        # Wake up between jobs often enough to try for the sweep lock on time (RQ's own dequeue).
        return max(1, int(lock_try_seconds()))

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        while True:
            try:
                found = self._dequeue(timeout, max_idle_time)
            except REDIS_OUTAGE as exc:
                self._redis.pause(exc)
                continue
            self._redis_answered()
            return found

    def _dequeue(self, timeout: int | None, max_idle_time: int | None) -> Any:
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)  # type: ignore[misc]

    def _redis_answered(self) -> None:
        """After an outage: Redis is back, maybe restarted empty; register this worker again if
        it was lost with it."""
        if not self._redis.failing:
            return
        self._redis.recovered()
        try:
            if not self.connection.exists(self.key):  # type: ignore[attr-defined]
                self.register_birth()  # type: ignore[attr-defined]
        except REDIS_OUTAGE as exc:
            log.warning("could not register the worker again (%s); will go on without", exc)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        try:
            super().heartbeat(timeout, pipeline)  # type: ignore[misc]
        except REDIS_OUTAGE as exc:
            log.warning("heartbeat skipped: Redis unavailable (%s)", exc)

    def check_for_suspension(self, burst: bool) -> None:
        try:
            super().check_for_suspension(burst)  # type: ignore[misc]
        except REDIS_OUTAGE as exc:
            log.warning("suspension check skipped: Redis unavailable (%s)", exc)

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return self._sweep_due() or super().should_run_maintenance_tasks  # type: ignore[misc]

    def run_maintenance_tasks(self) -> None:
        if self._sweep_due():
            self.sweep()
        if super().should_run_maintenance_tasks:  # type: ignore[misc]
            try:
                super().run_maintenance_tasks()  # type: ignore[misc]
            except REDIS_OUTAGE as exc:
                log.warning("RQ maintenance skipped: Redis unavailable (%s)", exc)

    def maintain_heartbeats(self, job: Any, execution: Any) -> None:
        try:
            super().maintain_heartbeats(job, execution)  # type: ignore[misc]
        except REDIS_OUTAGE as exc:
            log.warning("job heartbeat skipped: Redis unavailable (%s)", exc)
        if self._sweep_due():
            self.sweep()

    def set_shutdown_requested_date(self) -> None:
        # Called by the stop signal's handler, maybe in the middle of an invocation: never raise.
        try:
            super().set_shutdown_requested_date()  # type: ignore[misc]
        except REDIS_OUTAGE as exc:
            log.warning("could not record the stop request in Redis (%s)", exc)

    def teardown(self) -> None:
        try:
            super().teardown()  # type: ignore[misc]
        except REDIS_OUTAGE as exc:
            log.warning("could not record the worker's end in Redis (%s); it expires there", exc)

    def _sweep_due(self) -> bool:
        # Try for the sweep lock several times per interval: it is free again within one
        # interval of its last sweep, even if that sweeper died (durable.sweep explains).
        return time.monotonic() - self._last_sweep >= lock_try_seconds()

    def sweep(self) -> None:
        self._last_sweep = time.monotonic()
        try:
            report = sweep_with_lock(self.connection, periodic=True)
            if report is not None and report.acted:
                log.info("sweep: %s", report)
        except DATABASE_OUTAGE as exc:
            log.warning("sweep failed: the database is unreachable (%s); will try again", one_line(exc))
        except Exception:
            log.exception("sweep failed; will try again")
        finally:
            close_old_connections()


# One round trip per invocation job: drop the job just finished (from RQ's intermediate queue,
# and its hash), move the next job id to the intermediate queue, as RQ's LMOVE does, and read
# its hash; for our own invocation jobs (ids "durable-..."), whose id says all, only whether the
# hash still exists (a cancelled or expired job has none). RQ's own dequeue costs a dozen round
# trips (heartbeats, state, suspension check, LMOVE, HGETALL, cleanup pipeline).
_NEXT_JOB = """
if ARGV[1] ~= '' then
  redis.call('LREM', KEYS[2], 1, ARGV[1])
  redis.call('DEL', ARGV[2] .. ARGV[1])
end
local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not id then return false end
if string.sub(id, 1, 8) == 'durable-' then
  return {id, redis.call('EXISTS', ARGV[2] .. id)}
end
return {id, redis.call('HGETALL', ARGV[2] .. id)}
"""


@dataclass(frozen=True)
class _Nudge:
    """An invocation job as the fast path needs it: its id names the execution."""

    id: str

    @property
    def args(self) -> tuple[str]:
        return (_execution_of(self.id),)


# How long the fast path blocks for a job at most before it checks for maintenance (the sweep).
FAST_WAIT_SECONDS = 1.0
# Worker heartbeats and the suspension check need not run per job: RQ's worker ttl is minutes.
HOUSEKEEPING_SECONDS = 1.0


class DurableWorker(SweepingWorkerMixin, SimpleWorker):
    """The engine's worker: invocations run in this process, one at a time, with its database
    connections kept between jobs. An invocation past its budget ends the whole process; the
    `durable_worker` supervisor starts a fresh one (measured against the forking worker in
    bench/workers.py: about three times the throughput; see the README).

    A job that finds the database unreachable (taking the lease failed for it) is put back at the
    head of the queue, and the worker takes no job until a trivial query succeeds again: a
    database restart leaves the queued wake-ups queued instead of using each one up in a
    millisecond (which left their executions to the sweep).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._finished_job: str | None = None  # an invocation job whose Redis records remain
        self._housekept = 0.0
        self._next_job = self.connection.register_script(_NEXT_JOB)
        self._database = Backoff("the database", log)
        self._database_error: DatabaseUnreachableError | None = None
        self._invoking = False

    def get_state(self) -> str:
        # Busy while an invocation runs, although the fast path never writes that state to Redis:
        # RQ's stop signal handler then waits for the invocation to finish, where it would
        # otherwise raise StopRequested inside the handler's code (a step's failed attempt).
        return WorkerStatus.BUSY if self._invoking else str(super().get_state())

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if timeout is None and pipeline is None and time.monotonic() - self._housekept < HOUSEKEEPING_SECONDS:
            return
        super().heartbeat(timeout, pipeline)

    def check_for_suspension(self, burst: bool) -> None:
        now = time.monotonic()
        if now - self._housekept >= HOUSEKEEPING_SECONDS:
            super().check_for_suspension(burst)
            super().heartbeat()
            self._housekept = now

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is None and state == getattr(self, "_state", None):
            return  # unchanged: save the round trip
        super().set_state(state, pipeline)

    def _dequeue(self, timeout: int | None, max_idle_time: int | None) -> Any:
        if self._database_error is not None:
            self._wait_for_database()
        if len(self._ordered_queues) > 1 or max_idle_time is not None:
            self._forget_finished_job()
            return super()._dequeue(timeout, max_idle_time)  # not our simple case: RQ's own dequeue
        queue = self._ordered_queues[0]
        while True:
            if self.should_run_maintenance_tasks and not self._redis.failing:
                self.run_maintenance_tasks()
            found = self._take_next_job(queue)
            self._redis_answered()
            if found is not None or timeout is None:  # timeout None: burst mode, done
                return found
            # Nothing queued: wait a moment for the next job with one blocking call (RQ's own
            # wait costs a few round trips, a job hash read and a log line per job), no longer
            # than until the next try for the sweep lock.
            self.set_state(WorkerStatus.IDLE)
            self.heartbeat()
            if (found := self._wait_for_job(queue, min(FAST_WAIT_SECONDS, lock_try_seconds()))) is not None:
                return found

    def _take_next_job(self, queue: Any) -> tuple[Any, Any] | None:
        while True:
            finished, self._finished_job = self._finished_job, None
            found = self._next_job(
                keys=[queue.key, queue.intermediate_queue_key],
                args=[finished or "", self.job_class.redis_job_namespace_prefix],
            )
            if not found:
                return None
            if not found[1]:
                continue  # the job's hash is gone (cancelled or expired): take the next one
            if isinstance(found[1], int):
                return _Nudge(as_text(found[0])), queue
            job = self.job_class(as_text(found[0]), connection=self.connection, serializer=self.serializer)
            job.restore(dict(zip(found[1][::2], found[1][1::2], strict=True)))
            job.redis_server_version = self.get_redis_server_version()  # type: ignore[no-untyped-call]
            return job, queue

    def _wait_for_job(self, queue: Any, seconds: float) -> tuple[Any, Any] | None:
        """The next job of `queue`, moved to RQ's intermediate queue as RQ does, if one comes
        within `seconds`."""
        waited = self.connection.blmove(queue.key, queue.intermediate_queue_key, seconds, "LEFT", "RIGHT")
        if waited is None:
            return None
        job_id_ = as_text(waited)
        if job_id_.startswith("durable-"):
            return _Nudge(job_id_), queue  # a nudge whose job was cancelled meanwhile is harmless
        try:
            job = self.job_class.fetch(job_id_, connection=self.connection, serializer=self.serializer)
        except NoSuchJobError:
            return None
        job.redis_server_version = self.get_redis_server_version()  # type: ignore[no-untyped-call]
        return job, queue

    def execute_job(self, job: Any, queue: Any) -> None:
        global _process_is_disposable
        _process_is_disposable = True
        if not isinstance(job, _Nudge) and job.func_name != INVOKE:
            try:
                super().execute_job(job, queue)
            except REDIS_OUTAGE as exc:
                log.warning("job %s: RQ's records of it may be incomplete: Redis unavailable (%s)", job.id, exc)
            return
        # Our jobs are nudges: the lease and the journal record the work, so RQ's per-job
        # bookkeeping (started registry, execution records, statuses, results) is skipped.
        # This halves the cost of a short invocation. The job's id stays in RQ's intermediate
        # queue until the next dequeue drops it; a worker dying before that leaves it there for
        # RQ's maintenance, and if it had not run it, the sweep queues the wake-up again.
        finished = True
        self._invoking = True
        try:
            invoke_once(*job.args)
        except DatabaseUnreachableError as exc:
            finished = False
            self._database_error = exc
            self._put_back(job.id, queue)
        finally:
            self._invoking = False
            if finished:
                self._finished_job = job.id
                self._finished_queue = queue

    def _put_back(self, job_id_: str, queue: Any) -> None:
        """Return a job not run to the head of its queue, for this worker or another to run."""
        try:
            with self.connection.pipeline() as pipeline:  # MULTI: taken out and put back together
                pipeline.lrem(queue.intermediate_queue_key, 1, job_id_)
                pipeline.lpush(queue.key, job_id_)
                pipeline.execute()
        except REDIS_OUTAGE as exc:
            # It stays in the intermediate queue; the sweep queues its wake-up again.
            log.warning("could not put job %s back on the queue (%s); the sweep will", job_id_, exc)
            return
        log.warning("put job %s back on the queue: %s", job_id_, self._database_error)

    def _wait_for_database(self) -> None:
        """Take no job until the database answers a trivial query again."""
        error, self._database_error = self._database_error, None
        while not database_reachable():
            self.heartbeat()
            self._database.pause(error)
        self._database.recovered()

    def _forget_finished_job(self) -> None:
        finished, self._finished_job = self._finished_job, None
        if finished is not None:
            with self.connection.pipeline() as pipeline:
                pipeline.lrem(self._finished_queue.intermediate_queue_key, 1, finished)
                pipeline.delete(self.job_class.key_for(finished))
                pipeline.execute()

    def teardown(self) -> None:
        try:
            self._forget_finished_job()
        except redis.RedisError:
            log.warning("could not drop the last job's records from Redis; RQ's maintenance will")
        super().teardown()


class DurableForkingWorker(SweepingWorkerMixin, Worker):
    """RQ's forking worker: each invocation in a work-horse process of its own. Slower (a fork and
    new database connections per job) but a crash in user code kills only the horse."""

    def execute_job(self, job: Any, queue: Any) -> None:
        global _process_is_disposable
        # The horse must open its own database connections, never share the parent's.
        connections.close_all()
        _process_is_disposable = True
        try:
            super().execute_job(job, queue)
        finally:
            _process_is_disposable = False
