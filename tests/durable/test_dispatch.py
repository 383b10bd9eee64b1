"""Dispatch to a real Redis: after commit only, one job per wake-up, far timers left to the sweep."""

import itertools
import time
from datetime import timedelta
from io import StringIO

import pytest
import redis
from django.core.management import call_command
from django.db import transaction

from durable import clock
from durable.client import start_execution
from durable.rq.dispatch import dispatch, taken_seen_key
from durable.rq.jobs import job_id, queue, timers_key
from durable.rq.timers import TIMER_LOCK_KEY, TimerPoller, release_due_timers
from durable.runtime import default_owner
from durable.sweep import LOCK_KEY, LOCK_TRIES, sweep_with_lock
from tests import workflows
from tests.processes import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def load_scripts() -> None:
    """Load the dispatch's scripts into Redis, so that round trips can be counted from the first call."""
    from durable.rq.dispatch import _ENQUEUE, _MISSING, _SCHEDULE
    from durable.rq.timers import _DUE_TIMERS

    for script in (_ENQUEUE, _MISSING, _SCHEDULE, _DUE_TIMERS):
        queue().connection.script_load(script)


def queued_ids() -> list[str]:
    return queue().get_job_ids()


def scheduled_ids() -> list[str]:
    return [member.decode() for member in queue().connection.zrange(timers_key(queue().name), 0, -1)]


def test_a_rolled_back_transaction_leaves_no_job_in_redis(redis_dispatch):
    class AbortError(Exception):
        pass

    def start_then_fail() -> None:
        with transaction.atomic():
            start_execution(workflows.three_steps, {})
            raise AbortError

    with pytest.raises(AbortError):
        start_then_fail()
    assert queued_ids() == []
    assert redis_dispatch.client().dbsize() == 0


def test_a_committed_start_enqueues_one_job_after_commit(redis_dispatch):
    with transaction.atomic():
        execution = start_execution(workflows.three_steps, {})
        assert queued_ids() == []  # nothing before the commit
    assert queued_ids() == [job_id(str(execution.pk), execution.wake_at)]


def test_the_same_wake_up_dispatched_twice_collapses_into_one_job(redis_dispatch):
    execution = start_execution(workflows.three_steps, {})
    dispatch(str(execution.pk), execution.wake_at)
    dispatch(str(execution.pk), execution.wake_at)
    assert len(queued_ids()) == 1


def test_near_wake_ups_are_scheduled_in_redis_and_far_ones_left_to_the_sweep(redis_dispatch):
    execution = start_execution(workflows.three_steps, {})
    queue().empty()
    soon = clock.now() + timedelta(minutes=10)
    later = clock.now() + timedelta(hours=2)
    dispatch(str(execution.pk), soon)
    dispatch(str(execution.pk), later)
    assert scheduled_ids() == [job_id(str(execution.pk), soon)]


def test_a_timer_is_released_to_the_queue_at_its_time_never_before(redis_dispatch):
    execution = start_execution(workflows.three_steps, {})
    queue().empty()
    fake = clock.FakeClock()
    soon = fake.current + timedelta(seconds=30, microseconds=1000)
    with clock.use_clock(fake):
        dispatch(str(execution.pk), soon)
        dispatch(str(execution.pk), soon)  # the same wake-up twice: one timer
        wake_up = job_id(str(execution.pk), soon)
        assert scheduled_ids() == [wake_up]
        assert release_due_timers(queue().connection) == 0
        fake.advance_to(soon - timedelta(microseconds=1000))  # a millisecond before its time
        assert release_due_timers(queue().connection) == 0
        assert queued_ids() == []
        fake.advance_to(soon)
        assert release_due_timers(queue().connection) == 1
    assert queued_ids() == [wake_up]
    assert scheduled_ids() == []
    job = queue().fetch_job(wake_up)
    assert (job.func_name, job.args) == ("durable.rq.jobs.invoke", (str(execution.pk),))


def _job_hash(wake_up: str) -> dict[bytes, bytes]:
    fields = queue().connection.hgetall(queue().job_class.key_for(wake_up))
    return {k: v for k, v in fields.items() if k not in (b"created_at", b"enqueued_at")}


def test_a_timer_is_queued_from_the_job_hash_built_when_it_was_scheduled(redis_dispatch, monkeypatch):
    """Its job's hash is built with the timer (where an invocation suspends), so the mover
    queues it in its one script: the same job as a dispatch of a due wake-up makes."""
    load_scripts()  # the mover's one round trip counted, whatever ran before
    connection = queue().connection
    execution = start_execution(workflows.three_steps, {})
    queue().empty()
    now = clock.now()
    dispatch(str(execution.pk), now)  # due: queued at once, the hash built then
    immediate = job_id(str(execution.pk), now)
    expected = _job_hash(immediate)
    assert expected[b"status"] == b"queued"
    assert expected[b"data"]
    queue().empty()
    connection.delete(queue().job_class.key_for(immediate))
    fake = clock.FakeClock(now)
    soon = now + timedelta(seconds=30)
    with clock.use_clock(fake):
        dispatch(str(execution.pk), soon)
        wake_up = job_id(str(execution.pk), soon)
        built = f"{timers_key(queue().name)}:job:{wake_up}"
        assert connection.exists(built)
        assert connection.pttl(built) > 0
        assert not connection.exists(queue().job_class.key_for(wake_up))
        fake.advance_to(soon)
        sent: list[str] = []
        send = redis.Redis.execute_command

        def counted(self, *args, **options):
            sent.append(str(args[0]))
            return send(self, *args, **options)

        monkeypatch.setattr(redis.Redis, "execute_command", counted)
        assert release_due_timers(connection) == 1
        monkeypatch.undo()
        assert sent == ["EVALSHA"]  # one round trip: no other command
    assert queued_ids() == [wake_up]
    assert not connection.exists(built)
    assert connection.ttl(queue().job_class.key_for(wake_up)) == -1  # kept as RQ keeps a queued job
    assert _job_hash(wake_up) == expected
    job = queue().fetch_job(wake_up)
    assert (job.func_name, job.args, job.get_status()) == ("durable.rq.jobs.invoke", (str(execution.pk),), "queued")


def test_a_due_timer_with_no_job_hash_built_is_queued_all_the_same(redis_dispatch):
    """Scheduled before hashes were built with timers, or its hash expired (every worker
    stopped past BUILT_JOB_GRACE_SECONDS): the mover builds it then."""
    connection = queue().connection
    execution = start_execution(workflows.three_steps, {})
    queue().empty()
    wake_up = job_id(str(execution.pk), clock.now())
    connection.zadd(timers_key(queue().name), {wake_up: clock.now().timestamp()})
    assert release_due_timers(connection) == 1
    assert queued_ids() == [wake_up]
    assert queue().fetch_job(wake_up).args == (str(execution.pk),)


def test_a_due_timer_whose_job_is_already_queued_is_not_queued_twice(redis_dispatch):
    connection = queue().connection
    execution = start_execution(workflows.three_steps, {})
    queue().empty()
    fake = clock.FakeClock()
    soon = fake.current + timedelta(seconds=5)
    with clock.use_clock(fake):
        dispatch(str(execution.pk), soon)
        fake.advance_to(soon)
        dispatch(str(execution.pk), soon)  # the sweep, say, queued it meanwhile
        wake_up = job_id(str(execution.pk), soon)
        assert queued_ids() == [wake_up]
        assert release_due_timers(connection) == 1
    assert queued_ids() == [wake_up]
    assert not connection.exists(f"{timers_key(queue().name)}:job:{wake_up}")


def test_one_timer_poller_at_a_time_and_another_takes_over_when_it_stops(redis_dispatch, monkeypatch):
    monkeypatch.setattr("durable.rq.timers.TIMER_LOCK_MS", 600)
    connection = queue().connection
    first, second = TimerPoller(connection, "first"), TimerPoller(connection, "second")
    first.start()
    try:
        wait_until(lambda: connection.get(TIMER_LOCK_KEY) == b"first", 5, message="the first poller's lock")
        second.start()
        # Watched for longer than the lock's 600 ms life: renewal keeps it with the first poller.
        watch_until = time.monotonic() + 1.0
        while time.monotonic() < watch_until:
            assert connection.get(TIMER_LOCK_KEY) == b"first"
            time.sleep(0.05)
        execution = start_execution(workflows.three_steps, {})
        queue().empty()
        soon = clock.now() + timedelta(milliseconds=200)
        dispatch(str(execution.pk), soon)
        first.stop()
        first.join(5)
        # The lock lapses and the second poller releases the timer.
        wait_until(queued_ids, 5, message="the second poller to release the timer")
        assert queued_ids() == [job_id(str(execution.pk), soon)]
        assert connection.get(TIMER_LOCK_KEY) == b"second"
    finally:
        first.stop()
        second.stop()
        second.join(5)


def test_one_sweep_at_a_time(redis_dispatch):
    client = redis_dispatch.client()
    client.set(LOCK_KEY, "another-worker:1 token", ex=30)  # a sweep running elsewhere
    assert sweep_with_lock(client) is None
    assert sweep_with_lock(client, periodic=True) is None
    client.delete(LOCK_KEY)
    assert sweep_with_lock(client, periodic=True) is not None


def test_the_sweep_lock_is_kept_for_the_interval_so_the_cluster_sweeps_about_once_per_interval(
    redis_dispatch, settings
):
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "SWEEP_INTERVAL": 8}
    client = redis_dispatch.client()
    assert sweep_with_lock(client, periodic=True) is not None
    # Kept after the sweep, marked done, naming its holder, and lapsing within the interval
    # (less one try: workers try LOCK_TRIES times per interval), whoever held it.
    assert client.get(LOCK_KEY).decode() == f"done {default_owner()}"
    assert 0 < client.pttl(LOCK_KEY) <= 8000 * (LOCK_TRIES - 1) / LOCK_TRIES
    assert sweep_with_lock(client, periodic=True) is None  # the other workers skip this interval
    # A sweep by hand runs unless a sweep is running now.
    assert sweep_with_lock(client) is not None
    assert client.get(LOCK_KEY).decode() == f"done {default_owner()}"


def test_a_sweeper_that_dies_mid_sweep_holds_the_lock_no_longer_than_the_interval(
    redis_dispatch, settings, monkeypatch
):
    from durable import sweep as sweep_module

    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "SWEEP_INTERVAL": 8}
    client = redis_dispatch.client()
    seen = []

    def die_mid_sweep(**kwargs):
        seen.append((client.get(LOCK_KEY).decode(), client.pttl(LOCK_KEY)))
        raise SystemExit  # as far as the lock can tell, the process is gone

    monkeypatch.setattr(sweep_module, "sweep", die_mid_sweep)
    monkeypatch.setattr(sweep_module, "_DONE", "return 0")  # a dead process marks nothing done
    with pytest.raises(SystemExit):
        sweep_with_lock(client, periodic=True)
    [(value, ttl)] = seen
    assert value.startswith(f"{default_owner()} ")  # names the holder while it sweeps
    assert 0 < ttl <= 8000 * (LOCK_TRIES - 1) / LOCK_TRIES
    assert sweep_with_lock(client) is None  # running, as far as anyone knows, until it lapses


def test_the_sweep_command_re_dispatches_a_due_execution_lost_from_redis(redis_dispatch):
    execution = start_execution(workflows.three_steps, {})
    redis_dispatch.client().flushall()  # the nudge is lost; the database still knows
    out = StringIO()
    call_command("durable_sweep", stdout=out)
    assert "1 due" in out.getvalue()
    assert queued_ids() == [job_id(str(execution.pk), execution.wake_at)]


def test_a_wake_up_taken_by_a_worker_that_died_before_its_lease_is_queued_again(redis_dispatch):
    from durable.rq.dispatch import enqueue_wake_ups

    execution = start_execution(workflows.three_steps, {})
    wake_up = job_id(str(execution.pk), execution.wake_at)
    connection = queue().connection
    # A worker took the job (RQ's intermediate queue) and was killed before it took the lease:
    # the job's hash remains, which alone would absorb the sweep's re-dispatch of the wake-up.
    assert connection.lmove(queue().key, queue().intermediate_queue_key) == wake_up.encode()
    assert queued_ids() == []
    # Seen there the first time, it is left to the worker that took it (which would take its
    # lease within milliseconds), and again until TAKEN_STUCK_MS have passed since.
    assert enqueue_wake_ups([(str(execution.pk), wake_up)]) == 0
    assert enqueue_wake_ups([(str(execution.pk), wake_up)]) == 0
    assert queued_ids() == []
    seen_long_ago(connection, wake_up)
    assert enqueue_wake_ups([(str(execution.pk), wake_up)]) == 1
    assert queued_ids() == [wake_up]
    assert connection.llen(queue().intermediate_queue_key) == 0
    assert not connection.hexists(taken_seen_key(queue().intermediate_queue_key), wake_up)
    assert enqueue_wake_ups([(str(execution.pk), wake_up)]) == 0  # waiting in the queue: absorbed


def seen_long_ago(connection, wake_up: str) -> None:
    """As if the sweep had first seen `wake_up` in the intermediate queue a while ago."""
    from durable.rq.dispatch import TAKEN_STUCK_MS

    seen = taken_seen_key(queue().intermediate_queue_key)
    first = int(connection.hget(seen, wake_up))
    connection.hset(seen, wake_up, first - TAKEN_STUCK_MS - 1)


def test_a_sweep_in_the_moment_a_worker_takes_a_job_delivers_it_once(redis_dispatch):
    """A job a worker has just taken (in the intermediate queue, its lease not yet taken) is not
    queued again by a sweep or a nudge that comes then: it was, the job ran twice."""
    from durable.rq.dispatch import TAKEN_STUCK_MS, enqueue_wake_ups

    execution = start_execution(workflows.three_steps, {})
    wake_up = job_id(str(execution.pk), execution.wake_at)
    connection = queue().connection
    assert connection.lmove(queue().key, queue().intermediate_queue_key) == wake_up.encode()
    # Seen by every path that may queue it: the enqueue, the batch check and the timer mover.
    many = [(str(execution.pk), wake_up)] * 8
    assert enqueue_wake_ups(many) == 0
    assert enqueue_wake_ups([(str(execution.pk), wake_up)]) == 0
    connection.zadd(timers_key(queue().name), {wake_up: 0})
    release_due_timers(connection)
    assert queued_ids() == []
    assert [i.decode() for i in connection.lrange(queue().intermediate_queue_key, 0, -1)] == [wake_up]
    # What counts is the first sight, in Redis's own time, not the last.
    seen = int(connection.hget(taken_seen_key(queue().intermediate_queue_key), wake_up))
    seconds, micros = connection.time()
    assert 0 <= seconds * 1000 + micros // 1000 - seen < TAKEN_STUCK_MS


def test_many_wake_ups_go_to_redis_in_one_round_trip_and_queued_ones_are_not_repeated(redis_dispatch, monkeypatch):
    from durable.rq.dispatch import dispatch_many

    executions = [start_execution(workflows.three_steps, {}) for _ in range(30)]
    load_scripts()
    queue().empty()
    dispatch(str(executions[0].pk), executions[0].wake_at)  # already queued: absorbed below
    soon = clock.now() + timedelta(minutes=5)
    calls = []
    connection_class = queue().connection.connection_pool.connection_class
    original = connection_class.send_packed_command
    monkeypatch.setattr(
        connection_class, "send_packed_command", lambda self, *a, **k: (calls.append(1), original(self, *a, **k))[1]
    )
    dispatch_many(
        [(str(e.pk), e.wake_at, 0) for e in executions]
        + [(str(executions[1].pk), soon, 0)]  # a timer
        + [(str(executions[2].pk), executions[2].wake_at, 3)]  # a new generation: a job of its own
    )
    monkeypatch.undo()
    assert len(calls) == 3  # which jobs are missing, the queue's script, the timers' script
    ids = queued_ids()
    assert len(ids) == 31
    assert len(set(ids)) == 31
    assert ids[0] == job_id(str(executions[0].pk), executions[0].wake_at)
    assert job_id(str(executions[2].pk), executions[2].wake_at, 3) in ids
    assert scheduled_ids() == [job_id(str(executions[1].pk), soon)]
    # Each job is what RQ itself would have queued: a worker's RQ job reads it back.
    job = queue().fetch_job(ids[5])
    assert job.func_name == "durable.rq.jobs.invoke"
    assert job.args == (str(executions[5].pk),)
    assert job.get_status() == "queued"
    assert job.origin == queue().name


def test_the_sweep_re_dispatches_a_backlog_with_a_few_queries_and_one_round_trip(redis_dispatch, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from durable.sweep import sweep

    def sweep_cost() -> tuple[int, int, int]:
        calls = []
        connection_class = queue().connection.connection_pool.connection_class
        original = connection_class.send_packed_command
        monkeypatch.setattr(
            connection_class,
            "send_packed_command",
            lambda self, *a, **k: (calls.append(1), original(self, *a, **k))[1],
        )
        with CaptureQueriesContext(connection) as captured:
            report = sweep()
        monkeypatch.undo()
        return len(report.dispatched_due), len(captured.captured_queries), len(calls)

    load_scripts()
    for _ in range(3):
        start_execution(workflows.three_steps, {})
    queue().empty()
    due, queries_small, trips = sweep_cost()
    assert (due, trips) == (3, 1)
    assert len(queued_ids()) == 3
    for _ in range(60):
        start_execution(workflows.three_steps, {})
    due, queries_large, trips = sweep_cost()
    assert (due, trips) == (63, 1)  # all waiting in the queue: one round trip that only asks
    assert queries_large == queries_small  # not one per execution
    assert len(queued_ids()) == 63
    queue().empty()
    due, _, trips = sweep_cost()
    assert (due, trips) == (63, 2)  # which jobs are missing, then the queue's script for them
    assert len(queued_ids()) == 63


@pytest.mark.parametrize("completion", ["success", "failure"])
def test_completing_a_callback_dispatches_its_execution_after_commit(redis_dispatch, completion):
    # The execution must not wait for the sweep: the callback's completion queues its wake-up.
    from durable.client import send_callback_failure, send_callback_heartbeat, send_callback_success
    from durable.models import Operation
    from durable.runtime import run_invocation

    execution = start_execution(workflows.approval, {})
    queue().empty()
    assert run_invocation(str(execution.pk)).ran  # it suspends on the callback
    callback_id = Operation.objects.get(execution=execution, type="CALLBACK").callback_id
    queue().empty()
    send_callback_heartbeat(callback_id)
    assert queued_ids() == []  # a heartbeat wakes nobody
    with transaction.atomic():
        if completion == "success":
            send_callback_success(callback_id, '"yes"')
        else:
            send_callback_failure(callback_id, {"ErrorType": "Nope", "ErrorMessage": "no"})
        assert queued_ids() == []  # nothing before the commit
    execution.refresh_from_db()
    assert queued_ids() == [job_id(str(execution.pk), execution.wake_at)]


def test_a_large_batch_builds_and_sends_only_the_jobs_missing_from_redis(redis_dispatch, monkeypatch):
    from durable.rq.dispatch import _JobHash, enqueue_wake_ups

    executions = [start_execution(workflows.three_steps, {}) for _ in range(20)]
    connection = queue().connection
    wake_ups = [(str(e.pk), job_id(str(e.pk), e.wake_at)) for e in executions]
    # Missing from Redis: one whose job was lost, one taken by a worker killed before its lease
    # (its hash remains, its id in the intermediate queue), one that RQ failed.
    lost, taken, failed = wake_ups[3], wake_ups[7], wake_ups[11]
    connection.lrem(queue().key, 1, lost[1])
    connection.delete(queue().job_class.key_for(lost[1]))
    connection.lrem(queue().key, 1, taken[1])
    connection.rpush(queue().intermediate_queue_key, taken[1])
    connection.lrem(queue().key, 1, failed[1])
    connection.hset(queue().job_class.key_for(failed[1]), "status", "failed")
    built = []
    original = _JobHash.fields
    monkeypatch.setattr(_JobHash, "fields", lambda self, e, **k: (built.append(e), original(self, e, **k))[1])

    assert enqueue_wake_ups(wake_ups) == 2  # the taken one: at its first sight, left alone
    assert sorted(built) == sorted([lost[0], failed[0]])
    built.clear()
    seen_long_ago(connection, taken[1])
    assert enqueue_wake_ups(wake_ups) == 1
    assert built == [taken[0]]
    assert sorted(queued_ids()) == sorted(j for _, j in wake_ups)
    assert connection.llen(queue().intermediate_queue_key) == 0
    assert queue().fetch_job(failed[1]).get_status() == "queued"
    built.clear()
    assert enqueue_wake_ups(wake_ups) == 0  # all waiting: nothing built, nothing sent
    assert built == []


def test_job_hashes_are_copies_of_rqs_own_and_rq_makes_them_if_its_hash_changed(redis_dispatch, monkeypatch, caplog):
    from rq.utils import now as rq_now
    from rq.utils import utcformat

    from durable.rq.dispatch import _JobHash, _rq_job_fields

    q = queue()
    execution_id = "0a1b2c3d-0000-4000-8000-00000000abcd"
    at = rq_now()
    copied = _JobHash.of(q, 1800)
    assert copied.template is not None
    assert copied.fields(execution_id, stamp=utcformat(at)) == _rq_job_fields(q, execution_id, 1800, at)

    # Another RQ whose hash has a field of its own per job: the copy would be wrong, so RQ makes each.
    original, nonces = q.job_class.to_dict, itertools.count()
    monkeypatch.setattr(q.job_class, "to_dict", lambda self, **k: {**original(self, **k), "nonce": next(nonces)})
    with caplog.at_level("WARNING", logger="durable.worker"):
        made = _JobHash.of(q, 1800)
    assert made.template is None
    assert "RQ's job hash is not the one expected" in caplog.text
    fields = made.fields(execution_id, stamp="ignored")
    assert "nonce" in fields[0::2]
    assert fields[fields.index("description") + 1] == f"durable invocation of {execution_id}"
