"""Dispatch to a real Redis: after commit only, one job per wake-up, far timers left to the sweep."""

import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction

from durable import clock
from durable.client import start_execution
from durable.sweep import LOCK_KEY, sweep_with_lock
from durable.worker import TIMER_LOCK_KEY, TimerPoller, dispatch, job_id, queue, release_due_timers, timers_key
from tests import workflows
from tests.processes import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_dispatch(redis_server, settings):
    settings.RQ_QUEUES["default"]["URL"] = redis_server.url
    settings.DURABLE = {**settings.DURABLE, "DISPATCHER": "durable.worker.dispatch", "SCHEDULE_HORIZON": 3600}
    redis_server.client().flushall()
    return redis_server


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
    assert (job.func_name, job.args) == ("durable.worker.invoke", (str(execution.pk),))


def test_one_timer_poller_at_a_time_and_another_takes_over_when_it_stops(redis_dispatch, monkeypatch):
    monkeypatch.setattr("durable.worker.TIMER_LOCK_MS", 600)
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
    client.set(LOCK_KEY, "another-worker", ex=30)
    assert sweep_with_lock(client) is None
    client.delete(LOCK_KEY)
    assert sweep_with_lock(client) is not None
    assert client.get(LOCK_KEY) is None  # released after the sweep


def test_the_sweep_command_re_dispatches_a_due_execution_lost_from_redis(redis_dispatch):
    execution = start_execution(workflows.three_steps, {})
    redis_dispatch.client().flushall()  # the nudge is lost; the database still knows
    out = StringIO()
    call_command("durable_sweep", stdout=out)
    assert "1 due" in out.getvalue()
    assert queued_ids() == [job_id(str(execution.pk), execution.wake_at)]
