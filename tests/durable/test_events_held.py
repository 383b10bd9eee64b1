"""A worker makes the after-commit deliveries of its invocations once its queue is empty, or
once the oldest was held DELIVERY_HOLD_SECONDS (durable.sinks.hold_deliveries): a burst of
wake-ups runs without the sinks' work of the invocations before it. Every held delivery is made
once: at the next empty queue, after a job once due, from the flusher thread during a long job,
when the worker stops, or by the pass after the grace if its process died."""

import threading
import time

import pytest

from durable import sinks
from durable.client import start_execution
from durable.models import EventDelivery
from durable.runtime import run_invocation
from durable.signals import execution_status_changed
from tests.durable import event_workflows

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def holding(monkeypatch):
    """This process holds its deliveries and marks, as the engine's worker does."""
    monkeypatch.setattr(sinks, "MARK_SECONDS", 600.0)
    monkeypatch.setattr(sinks, "DELIVERY_HOLD_SECONDS", 600.0)  # capped by the marks' hold
    sinks._cooling.clear()
    sinks.hold_marks(True)
    sinks.hold_deliveries(True)
    yield
    with sinks._held_lock:
        sinks._deliveries.clear()
        sinks._held.clear()
    sinks.hold_deliveries(False)
    sinks.hold_marks(False)


def started(count: int = 1) -> list[str]:
    """Executions started as a web process starts them: their start's events delivered at once."""
    sinks._holding_deliveries = False  # (what hold_deliveries(False) would make of the held ones: none)
    try:
        return [str(start_execution(event_workflows.outcome, {}).pk) for _ in range(count)]
    finally:
        sinks._holding_deliveries = True


def end_one() -> str:
    """Start an execution, then run its invocation here, as a worker's job does."""
    [execution_id] = started()
    assert run_invocation(execution_id).status == "SUCCEEDED"
    return execution_id


def statuses(seen: list[dict]) -> list[str]:
    return [s["status"] for s in seen]


def test_a_held_delivery_is_made_when_the_worker_asks_not_at_the_commit(signals_sent):
    ids = [end_one() for _ in range(3)]
    assert statuses(signals_sent) == ["RUNNING"] * 3  # the ends' events: held
    assert len(sinks._deliveries) == 3
    sinks.deliver_held(due_only=True)  # not due yet
    assert len(signals_sent) == 3
    sinks.deliver_held()
    assert statuses(signals_sent) == ["RUNNING"] * 3 + ["SUCCEEDED"] * 3
    assert [s["execution_id"] for s in signals_sent[3:]] == ids  # in the order they committed
    assert sinks._deliveries == []
    sinks.flush_marks()
    assert set(EventDelivery.objects.values_list("status", "attempts")) == {("DELIVERED", 1)}


def test_a_held_delivery_is_made_after_a_job_once_it_is_due(signals_sent, monkeypatch):
    monkeypatch.setattr(sinks, "DELIVERY_HOLD_SECONDS", 0.2)
    end_one()
    sinks.deliver_held(due_only=True)
    assert statuses(signals_sent) == ["RUNNING"]
    with sinks._held_lock:
        sinks._deliveries_since -= 0.2  # held that long (no sleep)
    sinks.deliver_held(due_only=True)
    assert statuses(signals_sent) == ["RUNNING", "SUCCEEDED"]


def test_a_worker_busy_with_a_long_job_has_its_held_deliveries_made_meanwhile(signals_sent, monkeypatch):
    monkeypatch.setattr(sinks, "DELIVERY_HOLD_SECONDS", 0.2)
    end_one()
    began = time.monotonic()
    deadline = began + 10
    while len(signals_sent) < 2:  # the next job runs meanwhile: the flusher thread makes it
        assert time.monotonic() < deadline, "a held delivery was not made during a long job"
        time.sleep(0.02)
    assert time.monotonic() - began >= 0.15
    assert statuses(signals_sent) == ["RUNNING", "SUCCEEDED"]
    assert sinks._deliveries == []


def test_deliveries_are_not_held_when_the_pass_would_not_wait_for_them(settings, signals_sent):
    settings.DURABLE = {**settings.DURABLE, "EVENT_AFTER_COMMIT_GRACE": 0}
    end_one()
    assert statuses(signals_sent) == ["RUNNING", "SUCCEEDED"]  # at once
    assert sinks._deliveries == []


def test_a_worker_that_stops_makes_what_it_held(signals_sent):
    end_one()
    sinks.hold_deliveries(False)
    assert statuses(signals_sent) == ["RUNNING", "SUCCEEDED"]
    sinks.flush_marks()
    assert set(EventDelivery.objects.values_list("status", "attempts")) == {("DELIVERED", 1)}


def test_deliveries_held_from_many_threads_are_each_made_once(signals_sent):
    """A map's or parallel's branches commit from threads of their own."""
    starts = started(16)
    errors: list[BaseException] = []

    def run(chunk: list[str]) -> None:
        try:
            for execution_id in chunk:
                run_invocation(execution_id)
                sinks.deliver_held(due_only=execution_id != chunk[1])
        except BaseException as exc:
            errors.append(exc)
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=run, args=(starts[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    sinks.deliver_held()
    ended = sorted(s["execution_id"] for s in signals_sent if s["status"] == "SUCCEEDED")
    assert ended == sorted(starts)


def test_an_empty_queue_is_the_sinks_turn(redis_dispatch, signals_sent):
    """The worker makes its held deliveries when it finds no job waiting, before it waits."""
    from durable.rq.dispatch import enqueue_wake_ups
    from durable.rq.jobs import job_id, queue
    from durable.rq.worker import DurableWorker

    q = queue()
    worker = DurableWorker([q], connection=q.connection)
    worker._last_sweep = time.monotonic() + 3600  # no sweep in the way
    end_one()
    q.empty()
    assert statuses(signals_sent) == ["RUNNING"]
    waiting = start_execution(event_workflows.outcome, {})  # its start's event: held too
    q.empty()
    arrived: list[float] = []

    def enqueue() -> None:
        time.sleep(0.3)
        arrived.append(time.monotonic())
        enqueue_wake_ups([(str(waiting.pk), job_id(str(waiting.pk), waiting.wake_at))])

    made: list[float] = []

    def receiver(sender, **kwargs):
        made.append(time.monotonic())

    execution_status_changed.connect(receiver)
    thread = threading.Thread(target=enqueue)
    thread.start()
    try:
        assert worker._dequeue(timeout=1, max_idle_time=None) is not None
    finally:
        thread.join()
        execution_status_changed.disconnect(receiver)
    assert sorted(statuses(signals_sent)) == ["RUNNING", "RUNNING", "SUCCEEDED"]
    assert len(made) == 2
    assert max(made) < arrived[0]  # before the job came, while the queue was empty
    assert sinks._deliveries == []
