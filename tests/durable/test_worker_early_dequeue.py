"""The fast path sends for its next job as the running invocation begins its last write
(durable.rq.worker._take_next_early), so the round trip to Redis overlaps that write; a worker
told to stop meanwhile puts the job it took back at the head of the queue. Real worker
processes on a real Redis."""

import subprocess
import textwrap
import time

import pytest
from django.db import connection

from durable.client import start_execution
from durable.models import Execution
from durable.rq.jobs import queue
from tests import workflows
from tests.processes import run_engine_script

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def run_worker(redis_url: str, script: str) -> subprocess.CompletedProcess[str]:
    prelude = textwrap.dedent(
        """
        import django
        django.setup()
        from durable.rq.jobs import queue
        from durable.rq.worker import DurableWorker
        from durable.store.leased import LeasedJournal
        q = queue()
        """
    )
    return run_engine_script(prelude + textwrap.dedent(script), redis_url, connection.settings_dict)


def test_the_next_job_is_asked_for_before_each_last_write_and_nothing_is_left_behind(redis_dispatch):
    ids = [str(start_execution(workflows.three_steps, {}).pk) for _ in range(6)]
    done = run_worker(
        redis_dispatch.url,
        """
        order = []
        early, finish = DurableWorker._take_next_early, LeasedJournal.finish
        def take_next_early(self):
            order.append("early")
            early(self)
            order.append("sent" if self._early is not None else "not sent")
        def finished(self, *args, **kwargs):
            order.append("write")
            return finish(self, *args, **kwargs)
        DurableWorker._take_next_early, LeasedJournal.finish = take_next_early, finished
        DurableWorker([q], connection=q.connection).work(burst=True)
        print(" ".join(order))
        """,
    )
    order = done.stdout.split()
    # Each invocation: its request for the next job sent, then its last write.
    assert order == ["early", "sent", "write"] * len(ids), order
    assert {e.status for e in Execution.objects.filter(pk__in=ids)} == {"SUCCEEDED"}
    redis = redis_dispatch.client()
    q = queue()
    assert redis.llen(q.key) == 0
    assert redis.llen(q.intermediate_queue_key) == 0  # every job's records finished
    # Their hashes expire within FINISHED_JOB_KEEP_MS (a late re-dispatch is absorbed meanwhile).
    from durable.rq.worker import FINISHED_JOB_KEEP_MS

    left = redis.keys(f"{q.job_class.redis_job_namespace_prefix}*")
    assert all(0 < redis.pttl(key) <= FINISHED_JOB_KEEP_MS for key in left), [redis.pttl(k) for k in left]


def test_a_worker_stopped_during_an_invocation_puts_the_job_it_took_early_back(redis_dispatch):
    stopping = str(start_execution(workflows.stops_its_worker, {}).pk)
    waiting = str(start_execution(workflows.three_steps, {}).pk)
    q = queue()
    redis = redis_dispatch.client()
    queued = [job_id.decode() for job_id in redis.lrange(q.key, 0, -1)]
    assert len(queued) == 2
    run_worker(redis_dispatch.url, "DurableWorker([q], connection=q.connection).work(burst=True)")
    # The first ran to its end (a warm shut down waits for it); the second, taken early, is
    # back at the head of the queue, not stranded in the stopped worker's intermediate queue.
    assert Execution.objects.get(pk=stopping).status == "SUCCEEDED"
    assert Execution.objects.get(pk=waiting).status == "RUNNING"
    assert Execution.objects.get(pk=waiting).invocation_count == 0
    assert [job_id.decode() for job_id in redis.lrange(q.key, 0, -1)] == queued[1:]
    assert redis.llen(q.intermediate_queue_key) == 0


def test_an_early_request_that_found_the_queue_empty_leaves_a_job_queued_since_to_the_wait(redis_dispatch):
    """A job queued between the early request and the end of the invocation (a timer coming due
    then) is taken at once by the wait for the next job (BLMOVE on a queue that is not empty),
    with no second request: with more workers than jobs, most early requests find the queue
    empty, and asking again cost each job a round trip. A burst worker, which stops when it
    finds no job, asks again."""
    from durable.rq.jobs import job_id
    from durable.rq.worker import DurableWorker

    q = queue()
    redis = redis_dispatch.client()
    for burst in (False, True):
        worker = DurableWorker([q], connection=q.connection)
        worker._last_sweep = time.monotonic() + 3600  # no sweep in the way
        running = str(start_execution(workflows.three_steps, {}).pk)  # queued by its start
        taken = worker._take_next_job(q)
        assert taken is not None
        assert taken[0].id == job_id(running, Execution.objects.get(pk=running).wake_at, 0)
        worker._running = (taken[0].id, q)
        worker._take_next_early()  # as the invocation begins its last write: the queue is empty
        assert worker._early is not None
        worker._running = None
        later = str(start_execution(workflows.three_steps, {}).pk)  # queued meanwhile
        redis.config_resetstat()
        found = worker._dequeue(timeout=None if burst else 1, max_idle_time=None)
        assert found is not None
        assert found[0].id == job_id(later, Execution.objects.get(pk=later).wake_at, 0)
        calls = {name: stats["calls"] for name, stats in redis.info("commandstats").items()}
        if burst:
            assert (calls.get("cmdstat_evalsha"), calls.get("cmdstat_blmove")) == (1, None), calls
        else:
            assert (calls.get("cmdstat_evalsha"), calls.get("cmdstat_blmove")) == (None, 1), calls
        # The first job's records were finished by the early request; the second is the one taken.
        assert [i.decode() for i in redis.lrange(q.intermediate_queue_key, 0, -1)] == [found[0].id]
        redis.delete(q.intermediate_queue_key)


def test_a_worker_records_held_marks_only_once_its_wait_for_a_job_lasts(redis_dispatch, monkeypatch):
    """Between two jobs a worker may find the queue empty for a moment: it waits briefly before it
    records the delivery marks it holds (an UPDATE), so jobs coming a few milliseconds apart do
    not cost one each; a wait that lasts records them."""
    import threading
    import time

    from durable import sinks
    from durable.rq.dispatch import enqueue_wake_ups
    from durable.rq.jobs import job_id
    from durable.rq.worker import BRIEF_WAIT_SECONDS, DurableWorker

    flushed: list[float] = []
    monkeypatch.setattr(sinks, "flush_marks", lambda *, due_only=False: due_only or flushed.append(time.monotonic()))
    q = queue()
    worker = DurableWorker([q], connection=q.connection)
    worker._last_sweep = time.monotonic() + 3600  # no sweep in the way

    # The executions are started here; their jobs go to Redis from a thread a moment later
    # (Redis alone, no database connection to open in the thread: a slow machine adds little).
    executions = [start_execution(workflows.three_steps, {}) for _ in range(4)]
    q.empty()

    def queue_in(seconds: float, execution: Execution) -> threading.Thread:
        def enqueue() -> None:
            time.sleep(seconds)
            enqueue_wake_ups([(str(execution.pk), job_id(str(execution.pk), execution.wake_at))])

        thread = threading.Thread(target=enqueue)
        thread.start()
        return thread

    for delay, execution in zip((0.005, 0.01, 0.02), executions, strict=False):  # jobs ms apart: no UPDATE
        thread = queue_in(delay, execution)
        assert worker._dequeue(timeout=1, max_idle_time=None) is not None
        thread.join()
    assert flushed == []
    thread = queue_in(BRIEF_WAIT_SECONDS * 4, executions[3])  # a wait that lasts: marks recorded meanwhile
    began = time.monotonic()
    assert worker._dequeue(timeout=1, max_idle_time=None) is not None
    thread.join()
    assert len(flushed) == 1
    assert flushed[0] - began >= BRIEF_WAIT_SECONDS


def test_a_worker_runs_each_next_job_under_the_lease_its_last_write_took(redis_dispatch):
    """Each invocation's last write takes the lease of the job the early request took, and the
    next invocation uses it: one lease taken on its own for a burst of queued jobs."""
    ids = [str(start_execution(workflows.three_steps, {}).pk) for _ in range(6)]
    done = run_worker(
        redis_dispatch.url,
        """
        from durable.store import journal_store
        Store = type(journal_store())
        taken, handed = [], []
        take, hand = Store._take_lease, Store.handed_over
        def take_lease(self, execution_id, params):
            taken.append(execution_id)
            return take(self, execution_id, params)
        def handed_over(self, lease, row, journal=None):
            handed.append(lease.execution_id if row is not None else "none")
            return hand(self, lease, row, journal)
        Store._take_lease, Store.handed_over = take_lease, handed_over
        DurableWorker([q], connection=q.connection).work(burst=True)
        print(" ".join(taken))
        print(" ".join(handed))
        """,
    )
    taken, handed = (line.split() for line in done.stdout.splitlines()[-2:])
    assert taken == ids[:1]  # the first job's lease only; each next one came with a last write
    assert handed == ids[1:]
    rows = Execution.objects.filter(pk__in=ids)
    assert {(e.status, e.invocation_count, e.consecutive_deaths, e.lease_token) for e in rows} == {
        ("SUCCEEDED", 1, 0, None)
    }
    redis = redis_dispatch.client()
    q = queue()
    assert redis.llen(q.key) == 0
    assert redis.llen(q.intermediate_queue_key) == 0


def test_a_worker_leaving_a_job_taken_early_puts_it_back_and_lets_its_lease_go(redis_dispatch):
    """The job the early request took, whose lease the last write took, is not run here (the
    worker stops, or leaves the fast path): it goes back to the head of the queue, and its lease
    is let go at once, as if never taken, not left to run out and count a death."""
    from durable import runtime
    from durable.rq.worker import DurableWorker
    from durable.runtime import run_invocation

    q = queue()
    worker = DurableWorker([q], connection=q.connection)
    first = str(start_execution(workflows.three_steps, {}).pk)
    second = str(start_execution(workflows.three_steps, {}).pk)
    taken = worker._take_next_job(q)
    assert taken is not None
    worker._running = (taken[0].id, q)
    ending = runtime.ENDING.set(worker._take_next_early)
    try:
        assert run_invocation(first).status == "SUCCEEDED"
    finally:
        runtime.ENDING.reset(ending)
    worker._running = None
    held = Execution.objects.get(pk=second)
    assert held.lease_token is not None
    assert held.invocation_count == 1
    redis = redis_dispatch.client()
    second_job = [i.decode() for i in redis.lrange(q.intermediate_queue_key, 0, -1)]
    assert len(second_job) == 1  # the first's records finished by the early request; the second taken

    worker._drop_early()
    assert [i.decode() for i in redis.lrange(q.key, 0, -1)] == second_job  # back at the head
    row = Execution.objects.get(pk=second)
    assert (row.lease_token, row.lease_owner, row.invocation_count, row.consecutive_deaths) == (None, None, 0, 0)
    assert run_invocation(second).status == "SUCCEEDED"


def test_a_job_whose_hash_is_gone_leaves_nothing_in_the_intermediate_queue(redis_dispatch):
    """A job id queued with no hash (delivered twice and the first copy finished, cancelled, or
    expired) is skipped, and its id dropped from RQ's intermediate queue, where nothing else
    would: the fast path's request and the blocking wait alike."""
    ids = [str(start_execution(workflows.three_steps, {}).pk) for _ in range(2)]
    q = queue()
    redis = redis_dispatch.client()
    queued = [job_id.decode() for job_id in redis.lrange(q.key, 0, -1)]
    # The first job's hash gone, a plain RQ job id with no hash too, each queued again.
    redis.delete(q.job_class.key_for(queued[0]))
    redis.rpush(q.key, queued[0], "not-a-durable-job")
    # No sweep in the way: it would find the first execution due (its job's hash gone) and queue
    # its wake-up again, after the burst's last look at the queue if it came late (it once did).
    run_worker(
        redis_dispatch.url,
        """
        import time
        worker = DurableWorker([q], connection=q.connection)
        worker._last_sweep = time.monotonic() + 3600
        worker.work(burst=True)
        """,
    )
    assert Execution.objects.get(pk=ids[1]).status == "SUCCEEDED"
    assert redis.llen(q.key) == 0
    assert redis.llen(q.intermediate_queue_key) == 0
    # Waiting for a job: an id with no hash comes while the worker waits.
    from durable.rq.worker import DurableWorker

    worker = DurableWorker([q], connection=q.connection)
    redis.rpush(q.key, "not-a-durable-job")
    assert worker._wait_for_job(q, 0.1) is None
    assert redis.llen(q.intermediate_queue_key) == 0


def test_a_wake_up_dispatched_again_just_after_its_job_ran_is_absorbed(redis_dispatch):
    """A sweep that read an execution as due, then queued its wake-up after a worker ran its job
    to the end, queued it again (a job run for nothing): the finished job's hash now outlives it
    FINISHED_JOB_KEEP_MS, so that late re-dispatch is absorbed; after that, the same wake-up may be
    queued again (a job that came too early re-schedules its own timer under the same id)."""
    from durable.rq.dispatch import enqueue_wake_ups
    from durable.rq.jobs import job_id
    from durable.rq.worker import FINISHED_JOB_KEEP_MS, DurableWorker
    from durable.runtime import run_invocation

    q = queue()
    redis = redis_dispatch.client()
    worker = DurableWorker([q], connection=q.connection)
    worker._last_sweep = time.monotonic() + 3600
    execution = start_execution(workflows.three_steps, {})
    wake_up = job_id(str(execution.pk), execution.wake_at)
    taken = worker._take_next_job(q)
    assert taken is not None
    assert taken[0].id == wake_up
    assert run_invocation(str(execution.pk)).status == "SUCCEEDED"
    worker._finished_job, worker._finished_queue = wake_up, q  # as execute_job leaves it
    assert worker._take_next_job(q) is None  # its records finished: out of the intermediate queue
    assert redis.llen(q.intermediate_queue_key) == 0
    assert 0 < redis.pttl(q.job_class.key_for(wake_up)) <= FINISHED_JOB_KEEP_MS
    assert enqueue_wake_ups([(str(execution.pk), wake_up)]) == 0  # the sweep's late re-dispatch
    assert redis.llen(q.key) == 0
    time.sleep(FINISHED_JOB_KEEP_MS / 1000 + 0.1)
    assert enqueue_wake_ups([(str(execution.pk), wake_up)]) == 1
