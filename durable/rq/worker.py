"""The engine's RQ workers: the in-process worker with its one-round-trip dequeue, the forking
one, and what both do beside running jobs (the sweep, the timer thread, riding out outages).

They go beyond RQ's public API where its work loop offers no hook (the intermediate queue, the
idle dequeue, the worker's state during a job); all of that is here, checked against rq 3.0.0.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from django.db import close_old_connections, connections
from rq import SimpleWorker, Worker
from rq.exceptions import NoSuchJobError
from rq.utils import as_text
from rq.worker import WorkerStatus

from durable import conf, runtime, sinks
from durable.backends.sqlite3 import base as sqlite_backend
from durable.exceptions import DatabaseUnreachableError
from durable.retention import purge_try_seconds, purge_with_lock
from durable.rq import liveness
from durable.rq.jobs import (
    INVOKE,
    JOB_PREFIX,
    execution_of,
    invoke_once,
    is_invocation,
    renew_aging_connections,
    set_process_disposable,
)
from durable.rq.outage import DATABASE_OUTAGE, LONGEST_PAUSE, REDIS_OUTAGE, Backoff, database_reachable, one_line
from durable.rq.timers import TimerPoller
from durable.store import journal_store
from durable.sweep import lock_try_seconds, sweep_with_lock

# The same logger as the job's: one name for everything a worker says.
log = logging.getLogger("durable.worker")


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
    """Runs the engine's sweep in a thread of its own (the sweeper) whenever it gets the sweep
    lock, beside the jobs, and rides out a Redis outage instead of quitting.

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
        self._last_purge = 0.0
        self._stop_sweeping = threading.Event()
        self._redis = Backoff("Redis", log)
        self._loop_at = time.monotonic()  # when the work loop last came round (its heartbeat)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        # What the process holds once set up (Django, the apps, their modules: 140,000-odd
        # objects) lives as long as it does: out of the collector's way. A full collection walked
        # all of it, 24 ms during which every queued invocation waited (a burst of timers came
        # 10 ms later at p50 when one fell in it); now it walks what the jobs allocate. A forking
        # worker's children share those pages untouched, too.
        gc.collect()
        gc.freeze()
        # On SQLite, this process's writes queue behind one another's before the writers' lock,
        # so that the processes serving requests wait for at most one worker's write.
        sqlite_backend.set_background(True)
        poller = TimerPoller(self.connection, self.name)  # type: ignore[attr-defined]
        poller.start()
        heartbeat = liveness.Heartbeat(conf.get("WORKER_HEARTBEAT_FILE"), self.answering)
        heartbeat.start()
        self._stop_sweeping.clear()
        sweeper = threading.Thread(target=self._sweep_until_stopped, name="durable-sweep", daemon=True)
        sweeper.start()
        try:
            return bool(super().work(*args, **kwargs))  # type: ignore[misc]
        finally:
            heartbeat.stop()
            poller.stop()
            self._stop_sweeping.set()
            sweeper.join(SWEEP_JOIN_SECONDS)  # a sweep under way ends first (its writes are short)

    def _sweep_until_stopped(self) -> None:
        """The sweeper thread: the sweep (and the purge) whenever this worker gets their locks,
        off the work loop, with database connections of its own. In the loop, a lone worker took
        no job while it swept (3 to 27 ms about once a second in the bench), and a burst of
        timers due then was as late as the sweep was long (the README's "Against DBOS")."""
        try:
            while not self._stop_sweeping.wait(max(0.0, self._last_sweep + lock_try_seconds() - time.monotonic())):
                try:
                    self.sweep()
                    self.purge()
                except Exception:  # each logs its own failures; this thread must go on
                    log.exception("sweeper thread: unexpected failure; will try again")
        finally:
            connections.close_all()  # this thread's own

    def answering(self) -> bool:
        """Whether the work loop came round lately, or an invocation is running (for liveness)."""
        stalled = time.monotonic() - self._loop_at > liveness.LOOP_STALL_SECONDS
        return not stalled or bool(getattr(self, "_invoking", False))

    @property
    def dequeue_timeout(self) -> int:
        # Wake up between jobs every second (RQ's own dequeue): heartbeats, RQ's maintenance.
        return 1

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        while True:
            try:
                found = self._dequeue(timeout, max_idle_time)
            except REDIS_OUTAGE as exc:
                self._redis.pause(exc)
                self._loop_at = time.monotonic()  # riding out an outage is alive (liveness)
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
        self._loop_at = time.monotonic()
        try:
            super().heartbeat(timeout, pipeline)  # type: ignore[misc]
        except REDIS_OUTAGE as exc:
            log.warning("heartbeat skipped: Redis unavailable (%s)", exc)

    def check_for_suspension(self, burst: bool) -> None:
        try:
            super().check_for_suspension(burst)  # type: ignore[misc]
        except REDIS_OUTAGE as exc:
            log.warning("suspension check skipped: Redis unavailable (%s)", exc)

    def run_maintenance_tasks(self) -> None:
        # RQ's own (registries, every 30 s); the sweep is the sweeper thread's.
        try:
            super().run_maintenance_tasks()  # type: ignore[misc]
        except REDIS_OUTAGE as exc:
            log.warning("RQ maintenance skipped: Redis unavailable (%s)", exc)

    def maintain_heartbeats(self, job: Any, execution: Any) -> None:
        try:
            super().maintain_heartbeats(job, execution)  # type: ignore[misc]
        except REDIS_OUTAGE as exc:
            log.warning("job heartbeat skipped: Redis unavailable (%s)", exc)

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

    def sweep(self) -> None:
        """One try for the sweep lock and, if taken, a sweep (the sweeper thread's). It tries
        several times per interval: the lock is free again within one interval of its last sweep,
        even if that sweeper died (durable.sweep explains)."""
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

    def purge(self) -> None:
        """The periodic purge of expired executions (durable.retention), bounded per run, when
        this worker gets its lock."""
        every = purge_try_seconds()
        if not every or time.monotonic() - self._last_purge < every:
            return
        self._last_purge = time.monotonic()
        try:
            purge_with_lock(self.connection)  # it logs what it deleted
        except DATABASE_OUTAGE as exc:
            log.warning("purge failed: the database is unreachable (%s); will try again", one_line(exc))
        except Exception:
            log.exception("purge failed; will try again")
        finally:
            close_old_connections()


# How long a finished invocation job's hash outlives it (the fast path's; RQ's forking worker
# deletes it at once, JOB_RESULT_TTL). A sweep reads the executions that are due, then queues
# their wake-ups unless their jobs' hashes exist: one that a worker ran to its end in between,
# its hash deleted at once, was queued again and ran for nothing (with the sweep in a thread
# beside the jobs, a lone worker met it at its first job). Kept this long, the hash absorbs that
# late re-dispatch. Shorter than EARLY_TOLERANCE (durable.rq.jobs): a wake-up dispatched again
# under the same id on purpose (a job that came too early re-schedules its own timer) comes due
# after the hash is gone.
FINISHED_JOB_KEEP_MS = 1000

# One round trip per invocation job: drop the job just finished (from RQ's intermediate queue;
# its hash expires), move the next job id to the intermediate queue, as RQ's LMOVE does, and read
# its hash; for our own invocation jobs (ids starting with ARGV[3], JOB_PREFIX), whose id says all, only whether the
# hash still exists (a cancelled or expired job has none). RQ's own dequeue costs a dozen round
# trips (heartbeats, state, suspension check, LMOVE, HGETALL, cleanup pipeline).
_NEXT_JOB = """
if ARGV[1] ~= '' then
  redis.call('LREM', KEYS[2], 1, ARGV[1])
  redis.call('PEXPIRE', ARGV[2] .. ARGV[1], ARGV[4])
end
local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not id then return false end
if string.sub(id, 1, #ARGV[3]) == ARGV[3] then
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
        return (execution_of(self.id),)


# How long the fast path blocks for a job at most before it checks for maintenance (RQ's own).
FAST_WAIT_SECONDS = 1.0
# How long a stopping worker waits for its sweeper thread's sweep under way to end.
SWEEP_JOIN_SECONDS = 10.0
# How long it waits before it records held delivery marks and says it is idle.
BRIEF_WAIT_SECONDS = 0.05
# Worker heartbeats and the suspension check need not run per job: RQ's worker ttl is minutes.
HOUSEKEEPING_SECONDS = 1.0


class DurableWorker(SweepingWorkerMixin, SimpleWorker):
    """The engine's worker: invocations run in this process, one at a time, with its database
    connections kept between jobs. An invocation past its budget ends the whole process; the
    `durable_worker` supervisor starts a fresh one (faster than the forking worker: see the
    README's "Which RQ worker").

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
        # The fast path's next-job request sent as the running invocation began its last write:
        # (the connection it was sent on, the queue, the running job's id, which it finishes).
        self._early: tuple[Any, Any, str] | None = None
        # Its answer, read during that write (_next_execution): (the script's answer, the job it
        # names as _job_from gives it, the queue).
        self._early_read: tuple[Any, Any, Any] | None = None
        self._running: tuple[str, Any] | None = None  # the running invocation job's id and queue, on the fast path

    def get_state(self) -> str:
        # Busy while an invocation runs, although the fast path never writes that state to Redis:
        # RQ's stop signal handler then waits for the invocation to finish, where it would
        # otherwise raise StopRequested inside the handler's code (a step's failed attempt).
        return WorkerStatus.BUSY if self._invoking else str(super().get_state())

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if timeout is None and pipeline is None:
            now = time.monotonic()
            if now - self._housekept < HOUSEKEEPING_SECONDS:
                return
            self._housekept = now
        super().heartbeat(timeout, pipeline)

    def check_for_suspension(self, burst: bool) -> None:
        now = time.monotonic()
        if now - self._housekept >= HOUSEKEEPING_SECONDS:
            super().check_for_suspension(burst)
            self.heartbeat()

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is None and state == getattr(self, "_state", None):
            return  # unchanged: save the round trip
        super().set_state(state, pipeline)

    def _dequeue(self, timeout: int | None, max_idle_time: int | None) -> Any:
        if self._database_error is not None:
            self._wait_for_database()
        if len(self._ordered_queues) > 1 or max_idle_time is not None:
            sinks.deliver_held()
            sinks.flush_marks()
            self._forget_finished_job()
            return super()._dequeue(timeout, max_idle_time)  # not our simple case: RQ's own dequeue
        queue = self._ordered_queues[0]
        while True:
            if self.should_run_maintenance_tasks and not self._redis.failing:
                self.run_maintenance_tasks()
            found = self._take_next_job(queue, ask_again=timeout is None)
            self._redis_answered()
            if found is not None or timeout is None:  # timeout None: burst mode, done
                return found
            sinks.deliver_held()  # the queue is empty: the sinks' turn (durable.sinks)
            # Nothing queued: wait for the next job with one blocking call (RQ's own wait costs a
            # few round trips, a job hash read and a log line per job), no longer than a second
            # (heartbeats, RQ's maintenance). Held delivery marks (durable.sinks) are recorded if
            # the wait lasts: with more workers than the jobs keep busy, each found the queue
            # empty between two jobs and made an UPDATE of one or two marks each time.
            longest = FAST_WAIT_SECONDS
            if (found := self._wait_for_job(queue, min(BRIEF_WAIT_SECONDS, longest))) is not None:
                return found
            sinks.flush_marks()
            self.set_state(WorkerStatus.IDLE)
            self.heartbeat()
            renew_aging_connections()
            if (found := self._wait_for_job(queue, max(longest - BRIEF_WAIT_SECONDS, 0.01))) is not None:
                return found

    def _take_next_job(self, queue: Any, *, ask_again: bool = True) -> tuple[Any, Any] | None:
        """The next job, from the answer of the request sent early if there was one. An early
        answer that found the queue empty is asked again if `ask_again` (a burst worker, which
        stops when it finds none); otherwise the wait for the next job that follows (BLMOVE)
        takes one that came since at once, and the request would be a round trip for nothing."""
        early, self._early = self._early, None
        read, self._early_read = self._early_read, None
        while True:
            answered = read is not None or early is not None
            if read is not None:
                taken = read[1]
            else:
                taken = self._job_from(self._early_answer(early), queue) if early is not None else None
            read = early = None
            if taken is None:
                if answered and not ask_again and self._finished_job is None:
                    return None  # it found the queue empty (and finished the running job's records)
                finished, self._finished_job = self._finished_job, None
                keys, args = self._next_job_arguments(queue, finished or "")
                taken = self._job_from(self._next_job(keys=keys, args=args), queue)
                if taken is None:
                    return None
            if not isinstance(taken, tuple):
                continue  # the job's hash is gone (cancelled or expired): take the next one
            return taken

    def _job_from(self, found: Any, queue: Any) -> tuple[Any, Any] | bool | None:
        """The job an answer of the fast path's script names, with its queue: None if the queue
        was empty (or no answer came), False if the job's hash is gone."""
        if not found:
            return None
        if not found[1]:
            # The next request drops its id from the intermediate queue, where nothing else
            # would: a job delivered twice (its id queued again while the first copy ran) is
            # gone once that copy finished.
            self._finished_job, self._finished_queue = as_text(found[0]), queue
            return False
        if isinstance(found[1], int):
            return _Nudge(as_text(found[0])), queue
        job = self.job_class(as_text(found[0]), connection=self.connection, serializer=self.serializer)
        job.restore(dict(zip(found[1][::2], found[1][1::2], strict=True)))
        job.redis_server_version = self.get_redis_server_version()  # type: ignore[no-untyped-call]
        return job, queue

    def _next_job_arguments(self, queue: Any, finished: str) -> tuple[list[str], list[str]]:
        """The keys and arguments of the fast path's script (_NEXT_JOB)."""
        keys = [queue.key, queue.intermediate_queue_key]
        return keys, [finished, self.job_class.redis_job_namespace_prefix, JOB_PREFIX, str(FINISHED_JOB_KEEP_MS)]

    def _take_next_early(self) -> Callable[[], str | None] | None:
        """The running invocation begins its last write: send the fast path's next-job request
        now, on a connection of its own, finishing the running job's records as the script does
        after a job; the next dequeue reads the answer. The round trip to Redis (a quarter of a
        short invocation's time on one worker) then overlaps the write. The job it takes waits
        in this worker's intermediate queue for the write to end, a few milliseconds at most
        (the invocation's code has run), as a job taken after it would. Never raises: anything
        amiss and the next dequeue asks as before.

        Gives back `_next_execution`, for the write to take the lease of the job's execution."""
        if self._early is not None or self._running is None or self._redis.failing:
            return None
        job_id_, queue = self._running
        pool = self.connection.connection_pool
        try:
            sent = pool.get_connection()
        except Exception:  # noqa: BLE001 - the ordinary request will tell
            return None
        keys, args = self._next_job_arguments(queue, job_id_)
        try:
            sent.send_command("EVALSHA", self._next_job.sha, len(keys), *keys, *args)
        except Exception:  # noqa: BLE001
            sent.disconnect()
            pool.release(sent)
            return None
        self._early = (sent, queue, job_id_)
        return self._next_execution

    def _next_execution(self) -> str | None:
        """The execution of the invocation job the early request took, its answer read now (as
        the running invocation's last write begins, which then takes that execution's lease:
        durable.store.base.SqlJournalStore.next_lease); None if it took none, or the worker is
        stopping. Never raises."""
        early, self._early = self._early, None
        if early is None:
            return None
        taken = self._job_from(found := self._early_answer(early), early[1])
        self._early_read = (found, taken, early[1])
        if not isinstance(taken, tuple) or self._stop_requested:
            return None
        job = taken[0]
        if isinstance(job, _Nudge) or job.func_name == INVOKE:
            return str(job.args[0])
        return None

    def _early_answer(self, early: tuple[Any, Any, str]) -> Any:
        """The answer to a request `_take_next_early` sent, or None if none came (the script was
        not loaded, Redis failed): then the running job's records are finished by the next
        ordinary request, as if none had been sent."""
        sent, _, finished = early
        pool = self.connection.connection_pool
        try:
            return sent.read_response()
        except Exception as exc:  # noqa: BLE001 - NOSCRIPT, a connection error: ask as before
            if not isinstance(exc, redis.ResponseError):
                sent.disconnect()  # it may hold half an answer
            self._finished_job = finished
            return None
        finally:
            pool.release(sent)

    def _drop_early(self) -> None:
        """Put the job a next-job request sent early took back at the head of its queue (the
        worker is stopping, or leaving the fast path), its answer read now if not yet; and let go
        of the lease its execution's was taken ahead with, if it was."""
        early, self._early = self._early, None
        read, self._early_read = self._early_read, None
        found, queue = None, None
        if early is not None:
            found, queue = self._early_answer(early), early[1]
        elif read is not None:
            found, _, queue = read
        if found:
            self._put_back(as_text(found[0]), queue)
        journal_store().let_go_handed_lease()

    def _wait_for_job(self, queue: Any, seconds: float) -> tuple[Any, Any] | None:
        """The next job of `queue`, moved to RQ's intermediate queue as RQ does, if one comes
        within `seconds`."""
        waited = self.connection.blmove(queue.key, queue.intermediate_queue_key, seconds, "LEFT", "RIGHT")
        if waited is None:
            return None
        job_id_ = as_text(waited)
        if is_invocation(job_id_):
            return _Nudge(job_id_), queue  # a nudge whose job was cancelled meanwhile is harmless
        try:
            job = self.job_class.fetch(job_id_, connection=self.connection, serializer=self.serializer)
        except NoSuchJobError:
            self.connection.lrem(queue.intermediate_queue_key, 1, job_id_)  # as `_job_from` does
            return None
        job.redis_server_version = self.get_redis_server_version()  # type: ignore[no-untyped-call]
        return job, queue

    def execute_job(self, job: Any, queue: Any) -> None:
        set_process_disposable(True)
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
        fast = len(self._ordered_queues) == 1 and queue is self._ordered_queues[0]
        self._running = (job.id, queue) if fast else None
        ending = runtime.ENDING.set(self._take_next_early if fast else None)
        try:
            invoke_once(*job.args)
            self._database.recovered()  # it took its lease
        except DatabaseUnreachableError as exc:
            finished = False
            self._database_error = exc
            self._drop_early()
            self._put_back(job.id, queue)
        finally:
            runtime.ENDING.reset(ending)
            self._running = None
            self._invoking = False
            sinks.deliver_held(due_only=True)
            sinks.flush_marks(due_only=True)
            if finished:
                self._finished_queue = queue
                if self._early is None and self._early_read is None:  # (a request sent early finishes it)
                    self._finished_job = job.id

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
        """Take no job until the database answers a trivial query again. It pauses at least once,
        and the pauses grow until a job takes its lease: a job whose lease keeps failing to be
        taken while the database answers (a lock time-out, say) is retried at a bounded rate."""
        error, self._database_error = self._database_error, None
        self._database.pause(error)
        while not database_reachable():
            self.heartbeat()
            self._database.pause(error)
        # Said now, not when this worker next takes a lease: other workers may run every queued
        # wake-up while this one pauses, leaving it none to take for as long as the queue stays empty.
        self._database.answered()

    def _forget_finished_job(self) -> None:
        self._drop_early()
        finished, self._finished_job = self._finished_job, None
        if finished is not None:
            with self.connection.pipeline() as pipeline:
                pipeline.lrem(self._finished_queue.intermediate_queue_key, 1, finished)
                pipeline.pexpire(self.job_class.key_for(finished), FINISHED_JOB_KEEP_MS)
                pipeline.execute()

    def work(self, *args: Any, **kwargs: Any) -> bool:
        # Delivery marks are held while this works: flushed after a job when due, before it waits
        # for work, and when it stops (durable.sinks.hold_marks). After-commit deliveries too:
        # made when the queue is empty, after a job once due, and when it stops (hold_deliveries).
        sinks.hold_marks(True)
        sinks.hold_deliveries(True)
        try:
            return super().work(*args, **kwargs)
        finally:
            sinks.hold_deliveries(False)  # (their marks held: recorded next)
            sinks.hold_marks(False)

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
        # The horse must open its own database connections, never share the parent's.
        connections.close_all()
        set_process_disposable(True)
        try:
            super().execute_job(job, queue)
        finally:
            set_process_disposable(False)
