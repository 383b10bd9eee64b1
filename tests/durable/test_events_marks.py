"""A worker records the deliveries of several commits in one UPDATE (durable.sinks.hold_marks),
and a mark lost with its process means the event is delivered again, never lost."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from durable import conf, sinks
from durable.models import EventDelivery
from durable.testing import DurableTestRunner
from tests.durable import event_workflows

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def holding(monkeypatch):
    """This process holds its marks, as the engine's worker does; nothing is left held after."""
    monkeypatch.setattr(sinks, "MARK_SECONDS", 600.0)  # only the count or a flush records them here
    sinks._cooling.clear()
    sinks._held.clear()
    sinks.hold_marks(True)
    yield
    sinks._held.clear()
    sinks.hold_marks(False)


def marks(queries: CaptureQueriesContext) -> int:
    """The UPDATEs of delivery rows among these queries."""
    return sum(1 for q in queries.captured_queries if q["sql"].startswith('UPDATE "durable_eventdelivery"'))


def test_many_commits_deliveries_are_recorded_in_one_update(signals_sent):
    with DurableTestRunner(event_workflows.outcome) as runner:
        with CaptureQueriesContext(connection) as during:
            for _ in range(5):
                runner.run(json.dumps({}))
        assert len(signals_sent) == 10  # sent right after each commit, as ever
        assert marks(during) == 0
        assert set(EventDelivery.objects.values_list("status", "attempts")) == {("PENDING", 0)}
        with CaptureQueriesContext(connection) as flush:
            sinks.flush_marks()
    assert marks(flush) == 1
    assert EventDelivery.objects.count() == 10
    assert set(EventDelivery.objects.values_list("status", "attempts")) == {("DELIVERED", 1)}
    assert sinks._held == []


def test_marks_are_recorded_once_a_batch_is_held(signals_sent, monkeypatch):
    monkeypatch.setattr(sinks, "MARK_BATCH", 4)
    with DurableTestRunner(event_workflows.outcome) as runner, CaptureQueriesContext(connection) as during:
        for _ in range(3):
            runner.run(json.dumps({}))  # 2 events each: recorded after the 2nd run, 2 held
    assert marks(during) == 1
    assert EventDelivery.objects.filter(status="DELIVERED").count() == 4
    assert len(sinks._held) == 2


def test_a_flush_due_only_waits_for_the_batch_or_the_time(signals_sent, monkeypatch):
    with DurableTestRunner(event_workflows.outcome) as runner:
        runner.run(json.dumps({}))
        sinks.flush_marks(due_only=True)
        assert EventDelivery.objects.filter(status="PENDING").count() == 2
        monkeypatch.setattr(sinks, "MARK_SECONDS", 0.0)
        sinks.flush_marks(due_only=True)
    assert EventDelivery.objects.filter(status="DELIVERED").count() == 2


def test_marks_are_not_held_when_the_pass_would_not_wait_for_them(settings, signals_sent):
    settings.DURABLE = {**settings.DURABLE, "EVENT_AFTER_COMMIT_GRACE": 0}
    with DurableTestRunner(event_workflows.outcome) as runner, CaptureQueriesContext(connection) as during:
        runner.run(json.dumps({}))
    assert marks(during) == 2  # one per commit, at once
    assert sinks._held == []


def test_an_event_whose_mark_was_lost_is_delivered_again(signals_sent):
    grace = float(conf.get("EVENT_AFTER_COMMIT_GRACE"))
    with DurableTestRunner(event_workflows.outcome) as runner:
        result = runner.run(json.dumps({}))
        assert [s["status"] for s in signals_sent] == ["RUNNING", "SUCCEEDED"]
        sinks._held.clear()  # the worker is killed before it flushes: its marks are gone
        sinks.hold_marks(False)
        assert set(EventDelivery.objects.values_list("status", "attempts")) == {("PENDING", 0)}
        assert sinks.deliver_due().attempted == 0  # within the grace the pass leaves them alone
        runner.clock.advance_to(runner.clock.current + timedelta(seconds=grace + 1))
        report = sinks.deliver_due()
    assert report.attempted == 2
    assert signals_sent[2:] == signals_sent[:2]  # the same events again: receivers dedupe by id
    rows = EventDelivery.objects.filter(event__execution_id=result.execution_id)
    assert set(rows.values_list("status", "attempts")) == {("DELIVERED", 1)}
