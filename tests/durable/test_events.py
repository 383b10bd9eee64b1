"""The event outbox: every status change of an execution is an event written with the change,
sent after the commit to the signal and to the configured sinks, at least once."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from durable import sinks
from durable.client import invoked_execution_ids, redrive_execution, start_execution, stop_execution
from durable.models import EventDelivery, OutboxEvent
from durable.signals import execution_status_changed
from durable.sweep import sweep
from durable.testing import DurableTestRunner
from durable.webhooks import verify_signature
from tests.durable import event_workflows
from tests.durable.events_helpers import (
    SECRET,
    deliveries,
    events_of,
    received_events,
    statuses,
    webhook_settings,
)
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db(transaction=True)

DETAIL_KEYS = {
    "durableExecutionArn",
    "durableExecutionName",
    "executionId",
    "functionName",
    "status",
    "previousStatus",
    "startTimestamp",
    "endTimestamp",
}


@pytest.fixture(autouse=True)
def _fresh_sinks():
    """No sink left cooling (after a failure) by an earlier test in this process."""
    sinks._cooling.clear()
    yield
    sinks._cooling.clear()


@pytest.fixture(autouse=True)
def _listening(signals_sent):
    """Every test here runs with a receiver of the signal (tests/conftest.py's `signals_sent`)."""
    return signals_sent


def test_a_successful_run_has_two_events_in_order_with_the_eventbridge_shape(signals_sent):
    with DurableTestRunner(event_workflows.outcome) as runner:
        result = runner.run(json.dumps({}))
    events = events_of(result.execution_id)
    assert [(e.previous_status, e.status) for e in events] == [("", "RUNNING"), ("RUNNING", "SUCCEEDED")]
    started, ended = (e.detail for e in events)
    assert set(started) == DETAIL_KEYS  # no error key when there is none
    assert started["endTimestamp"] is None
    assert ended["status"] == "SUCCEEDED"
    assert ended["functionName"] == "tests.durable.event_workflows.outcome"
    assert ended["executionId"] == result.execution_id
    assert ended["durableExecutionArn"].endswith(
        f"/durable-execution/{ended['durableExecutionName']}/{result.execution_id}"
    )
    assert ended["startTimestamp"] == started["startTimestamp"]
    assert ended["endTimestamp"] >= ended["startTimestamp"]
    # The signal, once per event, in order, after each commit; its delivery rows say so.
    assert [(s["previous_status"], s["status"]) for s in signals_sent] == [("", "RUNNING"), ("RUNNING", "SUCCEEDED")]
    assert [(d.status, d.attempts) for d in deliveries(result.execution_id, "signal")] == [("DELIVERED", 1)] * 2


def test_event_ids_are_time_ordered_uuids_so_new_events_go_to_the_right_edge_of_their_indexes():
    """Version 7, as execution ids: each event's id sorts after those of the events before it
    (the millisecond first), so the events' key and the deliveries' (event, sink) index take
    new rows at their right edge. Random ids cost about a quarter more per event beside 50,000
    retained ones on SQLite."""
    ids = []
    for _ in range(3):
        with DurableTestRunner(event_workflows.outcome) as runner:
            result = runner.run(json.dumps({}))
        ids += [e.pk for e in events_of(result.execution_id)]
    assert len(ids) == 6
    assert all(i.version == 7 for i in ids), ids
    millis = [i.int >> 80 for i in ids]
    assert millis == sorted(millis)
    assert millis[-1] - millis[0] < 60_000  # the time of their writing, not a constant


def test_a_failure_and_its_redrive_are_events_with_the_error():
    with DurableTestRunner(event_workflows.outcome) as runner:
        result = runner.run(json.dumps({"fail": True}))
        redrive_execution(result.execution_id)
        runner.wait_for_result(result.execution_id)
    assert statuses(result.execution_id) == [
        ("", "RUNNING"),
        ("RUNNING", "FAILED"),
        ("FAILED", "RUNNING"),
        ("RUNNING", "FAILED"),  # the same code fails again
    ]
    failed = events_of(result.execution_id)[1].detail
    assert failed["error"]["ErrorType"] == "StepError"
    assert "broken" in failed["error"]["ErrorMessage"]
    assert "error" not in events_of(result.execution_id)[2].detail


def test_a_stop_is_an_event():
    with DurableTestRunner(event_workflows.outcome) as runner:
        execution_id = runner.run_async(json.dumps({"wait": 60}))
        runner.step_once(execution_id)
        stop_execution(execution_id, error={"ErrorType": "Operator", "ErrorMessage": "enough"})
    assert statuses(execution_id) == [("", "RUNNING"), ("RUNNING", "STOPPED")]
    assert events_of(execution_id)[1].detail["error"]["ErrorMessage"] == "enough"


@pytest.mark.parametrize("by", ["sweep", "invocation"])
def test_a_timeout_is_an_event(by):
    with DurableTestRunner(event_workflows.outcome) as runner:
        execution_id = str(start_execution(event_workflows.outcome, {"wait": 600}, execution_timeout=60).pk)
        runner.step_once(execution_id)
        runner.clock.advance_to(runner.clock.current + timedelta(seconds=61))
        if by == "sweep":
            sweep()
        else:
            runner.step_once(execution_id)
    assert statuses(execution_id) == [("", "RUNNING"), ("RUNNING", "TIMED_OUT")]
    assert events_of(execution_id)[1].detail["error"]["ErrorType"] == "ExecutionTimedOut"


def test_a_rolled_back_start_leaves_no_event():
    from django.db import transaction

    def start_then_roll_back() -> None:
        with transaction.atomic():
            start_execution(event_workflows.outcome, {})
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        start_then_roll_back()
    assert OutboxEvent.objects.count() == 0
    assert EventDelivery.objects.count() == 0


def test_a_webhook_sink_receives_signed_events(settings):
    with WebhookReceiver() as receiver:
        settings.DURABLE = {**settings.DURABLE, **webhook_settings(receiver.url)}
        with DurableTestRunner(event_workflows.outcome) as runner:
            result = runner.run(json.dumps({}))
    assert len(receiver.received) == 2
    for request in receiver.received:
        headers = request.headers
        assert verify_signature(SECRET, request.body, headers["X-Durable-Timestamp"], headers["X-Durable-Signature"])
        assert not verify_signature(
            "another secret", request.body, headers["X-Durable-Timestamp"], headers["X-Durable-Signature"]
        )
    bodies = received_events(receiver)
    assert [b["detail"]["status"] for b in bodies] == ["RUNNING", "SUCCEEDED"]
    assert {b["detail-type"] for b in bodies} == {"Durable Execution Status Change"}
    assert {b["source"] for b in bodies} == {"durable"}
    assert [b["id"] for b in bodies] == [str(e.pk) for e in events_of(result.execution_id)]
    assert bodies[1]["resources"] == [bodies[1]["detail"]["durableExecutionArn"]]
    assert [request.headers["X-Durable-Delivery"] for request in receiver.received] == [b["id"] for b in bodies]
    assert [(d.status, d.attempts) for d in deliveries(result.execution_id, "webhook")] == [("DELIVERED", 1)] * 2


def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt(settings):
    with WebhookReceiver([500, 500]) as receiver:
        settings.DURABLE = {**settings.DURABLE, **webhook_settings(receiver.url)}
        with DurableTestRunner(event_workflows.outcome):
            execution = start_execution(event_workflows.outcome, {})
            (delivery,) = deliveries(str(execution.pk), "webhook")
            assert (delivery.status, delivery.attempts) == ("PENDING", 1)  # the attempt after commit: 500
            assert "500" in delivery.last_error
            sinks.deliver_due()  # 500 again
            sinks.deliver_due()  # 200
            sinks.deliver_due()  # nothing left
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("DELIVERED", 3, "")
    assert len(receiver.received) == 3
    assert len({request.body for request in receiver.received}) == 1  # the same event each time


def test_a_receiver_that_is_down_fails_the_delivery_not_the_execution(settings):
    with WebhookReceiver() as receiver:
        url = receiver.url
    # Nothing listens at `url` any more.
    settings.DURABLE = {**settings.DURABLE, **webhook_settings(url, EVENT_MAX_ATTEMPTS=3)}
    with DurableTestRunner(event_workflows.outcome) as runner:
        result = runner.run(json.dumps({}))
        for _ in range(4):
            sinks.deliver_due()
    assert result.status == "SUCCEEDED"
    webhook = deliveries(result.execution_id, "webhook")
    assert [(d.status, d.attempts) for d in webhook] == [("FAILED", 3), ("FAILED", 3)]
    assert all("POST 127.0.0.1 failed" in d.last_error for d in webhook)
    # The signal was delivered all the same; the dead deliveries stay (the admin shows them).
    assert [d.status for d in deliveries(result.execution_id, "signal")] == ["DELIVERED"] * 2
    assert sinks.deliver_due().attempted == 0


def test_a_refusing_receiver_is_not_retried(settings):
    with WebhookReceiver([400]) as receiver:
        settings.DURABLE = {**settings.DURABLE, **webhook_settings(receiver.url)}
        with DurableTestRunner(event_workflows.outcome):
            execution = start_execution(event_workflows.outcome, {})
            sinks.deliver_due()
    (delivery,) = deliveries(str(execution.pk), "webhook")
    assert (delivery.status, delivery.attempts) == ("FAILED", 1)
    assert "400" in delivery.last_error


def test_the_webhook_sink_keeps_the_ssrf_rules(settings):
    with WebhookReceiver() as receiver:
        # Loopback is refused unless a setting allows it (only tests do).
        settings.DURABLE = {
            **settings.DURABLE,
            **webhook_settings(receiver.url, EVENT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES=False),
        }
        with DurableTestRunner(event_workflows.outcome):
            execution = start_execution(event_workflows.outcome, {})
    (delivery,) = deliveries(str(execution.pk), "webhook")
    assert (delivery.status, delivery.attempts) == ("FAILED", 1)
    assert "not public" in delivery.last_error
    assert receiver.received == []


def test_an_event_committed_but_never_sent_is_delivered_by_the_pass(settings, signals_sent, monkeypatch):
    with WebhookReceiver() as receiver:
        settings.DURABLE = {**settings.DURABLE, **webhook_settings(receiver.url)}
        with DurableTestRunner(event_workflows.outcome) as runner:
            # The process "dies" right after each commit: nothing is sent by it.
            monkeypatch.setattr(sinks, "deliver_after_commit", lambda records, found=None: None)
            result = runner.run(json.dumps({}))
            assert receiver.received == []
            assert signals_sent == []
            assert {d.status for d in EventDelivery.objects.all()} == {"PENDING"}
            monkeypatch.undo()
            report = sinks.deliver_due()
    assert report.attempted == 4  # two events, two sinks
    assert [b["detail"]["status"] for b in received_events(receiver)] == ["RUNNING", "SUCCEEDED"]
    assert [s["status"] for s in signals_sent] == ["RUNNING", "SUCCEEDED"]
    assert {(d.status, d.attempts) for d in EventDelivery.objects.filter(event__execution_id=result.execution_id)} == {
        ("DELIVERED", 1)
    }


def test_a_redelivered_event_sends_the_signal_again_with_the_same_values(signals_sent):
    from durable.store import outbox as store

    with DurableTestRunner(event_workflows.outcome) as runner:
        result = runner.run(json.dumps({}))
        assert len(signals_sent) == 2  # once per event
        ended = events_of(result.execution_id)[1]
        (delivery,) = ended.deliveries.all()
        store.retry_now([delivery.pk], runner.clock.current)  # delivered: left alone
        assert sinks.deliver_due().attempted == 0
        EventDelivery.objects.filter(pk=delivery.pk).update(status="FAILED")
        assert store.retry_now([delivery.pk], runner.clock.current) == 1
        sinks.deliver_due()
    assert len(signals_sent) == 3
    assert signals_sent[2] == signals_sent[1]  # the same news: receivers must be idempotent


def test_a_receiver_that_raises_gets_the_event_again(settings):
    settings.DURABLE = {**settings.DURABLE, "EVENT_RETRY_INITIAL_SECONDS": 0}
    calls: list[str] = []

    def flaky(sender, **kwargs):
        calls.append(kwargs["status"])
        if len(calls) == 1:
            raise RuntimeError("the database blinked")

    execution_status_changed.connect(flaky)
    try:
        with DurableTestRunner(event_workflows.outcome):
            execution = start_execution(event_workflows.outcome, {})
            (delivery,) = deliveries(str(execution.pk), "signal")
            assert (delivery.status, delivery.attempts) == ("PENDING", 1)
            sinks.deliver_due()
    finally:
        execution_status_changed.disconnect(flaky)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("DELIVERED", 2)
    assert calls == ["RUNNING", "RUNNING"]


def test_operation_events_are_opt_in_per_function(settings):
    with WebhookReceiver() as receiver:
        settings.DURABLE = {**settings.DURABLE, **webhook_settings(receiver.url)}
        with DurableTestRunner(event_workflows.with_operation_events) as runner:
            opted = runner.run(json.dumps({}))
        with DurableTestRunner(event_workflows.outcome) as runner:
            plain = runner.run(json.dumps({}))
    operations = events_of(opted.execution_id, "Durable Execution Operation Status Change")
    assert [(e.detail["operationName"], e.status) for e in operations] == [
        ("first", "SUCCEEDED"),
        ("pause", "SUCCEEDED"),
        ("second", "SUCCEEDED"),
    ]
    assert operations[0].detail["operationType"] == "STEP"
    assert operations[1].detail["operationType"] == "WAIT"
    # Operation events go to the sinks, not to the status signal.
    assert [d.sink for e in operations for d in e.deliveries.all()] == ["webhook"] * 3
    assert events_of(plain.execution_id, "Durable Execution Operation Status Change") == []
    kinds = [b["detail-type"] for b in received_events(receiver)]
    assert kinds.count("Durable Execution Operation Status Change") == 3
    assert kinds.count("Durable Execution Status Change") == 4


def test_operation_events_follow_the_setting_by_default(settings):
    with WebhookReceiver() as receiver:
        settings.DURABLE = {**settings.DURABLE, **webhook_settings(receiver.url, OPERATION_EVENTS=True)}
        with DurableTestRunner(event_workflows.outcome) as runner:
            result = runner.run(json.dumps({}))
    names = [
        e.detail["operationName"] for e in events_of(result.execution_id, "Durable Execution Operation Status Change")
    ]
    assert names == ["one", "maybe fail"]


def test_delivered_events_are_deleted_after_the_retention_period(settings):
    settings.DURABLE = {**settings.DURABLE, "EVENT_RETENTION_SECONDS": 3600}
    with DurableTestRunner(event_workflows.outcome) as runner:
        kept = runner.run(json.dumps({}))
        failed = runner.run(json.dumps({}))
        EventDelivery.objects.filter(event__execution_id=failed.execution_id).update(status="FAILED")
        assert sinks.deliver_due().purged == 0  # not old enough
        runner.clock.advance_to(runner.clock.current + timedelta(seconds=3601))
        purged = sinks.deliver_due().purged
    assert purged == 2
    assert events_of(kept.execution_id) == []
    assert len(events_of(failed.execution_id)) == 2  # a failed delivery keeps its event


def test_the_outbox_retention_runs_at_most_once_a_minute_unless_a_batch_was_full(settings):
    """Its query ran in every pass (every second); delivered events age by days."""
    settings.DURABLE = {**settings.DURABLE, "EVENT_RETENTION_SECONDS": 3600}

    def one_pass() -> tuple[int, int]:
        """(events purged, retention queries run) by a pass that purges one event at most."""
        with CaptureQueriesContext(connection) as captured:
            report = sinks.deliver_due(limit=1)
        return report.purged, sum("DISTINCT" in q["sql"] for q in captured.captured_queries)

    with DurableTestRunner(event_workflows.outcome) as runner:
        runner.run(json.dumps({}))
        runner.run(json.dumps({}))
        assert OutboxEvent.objects.count() == 4  # each run's start and end
        clock = runner.clock
        clock.advance_to(clock.current + timedelta(days=1))
        # A full batch (one event) leaves the next pass to purge again at once; the first pass
        # that finds fewer is the minute's last.
        assert [one_pass() for _ in range(6)] == [(1, 1)] * 4 + [(0, 1), (0, 0)]
        clock.advance_to(clock.current + timedelta(seconds=59))
        assert one_pass() == (0, 0)
        clock.advance_to(clock.current + timedelta(seconds=1))
        assert one_pass() == (0, 1)
        clock.current -= timedelta(hours=1)  # a clock set back: at once
        assert one_pass() == (0, 1)
    assert OutboxEvent.objects.count() == 0


def test_bad_sink_settings_are_refused_by_name(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.DURABLE = {**settings.DURABLE, "EVENT_SINKS": [{"type": "carrier-pigeon"}]}
    with pytest.raises(ImproperlyConfigured, match="carrier-pigeon"):
        sinks.configured()
    settings.DURABLE = {**settings.DURABLE, "EVENT_SINKS": [{"type": "webhook", "url": "https://a.example"}] * 2}
    with pytest.raises(ImproperlyConfigured, match="two sinks"):
        sinks.configured()


def test_an_invoked_child_has_its_own_events():

    with DurableTestRunner(event_workflows.invokes_outcome) as runner:
        result = runner.run(json.dumps({}))
    (child_id,) = invoked_execution_ids(result.execution_id)
    assert statuses(str(child_id)) == [("", "RUNNING"), ("RUNNING", "SUCCEEDED")]
    assert statuses(result.execution_id) == [("", "RUNNING"), ("RUNNING", "SUCCEEDED")]
    child_start = events_of(str(child_id))[0]
    assert child_start.function_name == "tests.durable.event_workflows.outcome"
    assert (
        child_start.detail["durableExecutionName"]
        == f"{result.execution_id}:{child_start.execution_name.split(':')[1]}"
    )


def test_stopping_a_parent_stops_its_child_with_an_event_each():
    with DurableTestRunner(event_workflows.invokes_outcome) as runner:
        execution_id = runner.run_async(json.dumps({"wait": 60}))
        runner.step_once(execution_id)
        stop_execution(execution_id)
    (child_id,) = invoked_execution_ids(execution_id)
    assert statuses(execution_id) == [("", "RUNNING"), ("RUNNING", "STOPPED")]
    assert statuses(str(child_id)) == [("", "RUNNING"), ("RUNNING", "STOPPED")]


def operation_events(execution_id: str) -> list[tuple[str, str | None, str]]:
    return [
        (e.detail["operationType"], e.detail["operationName"], e.status)
        for e in events_of(execution_id, "Durable Execution Operation Status Change")
    ]


@pytest.mark.parametrize("answer", ["sent", "timed out: sweep", "timed out: invocation"])
def test_a_callback_completed_from_outside_is_an_operation_event(settings, answer):
    with WebhookReceiver() as receiver:
        settings.DURABLE = {**settings.DURABLE, **webhook_settings(receiver.url)}
        with DurableTestRunner(event_workflows.waits_for_approval) as runner:
            execution_id = runner.run_async(json.dumps({}))
            callback_id = runner.wait_for_callback(execution_id)
            if answer == "sent":
                runner.send_callback_success(callback_id, "yes")
            elif answer == "timed out: sweep":
                runner.clock.advance_to(runner.clock.current + timedelta(seconds=61))
                sweep()
            # else the runner jumps to the deadline, and the invocation times the callback out
            result = runner.wait_for_result(execution_id)
    assert result.status == "SUCCEEDED"
    status = "SUCCEEDED" if answer == "sent" else "TIMED_OUT"
    assert operation_events(execution_id) == [("CALLBACK", "approval", status)]  # once, not again on replay
    assert [b["detail"]["status"] for b in received_events(receiver) if b["detail"].get("operationId")] == [status]


def test_an_invoke_completed_by_its_child_is_an_operation_event(settings):
    with WebhookReceiver() as receiver:
        settings.DURABLE = {**settings.DURABLE, **webhook_settings(receiver.url)}
        with DurableTestRunner(event_workflows.invokes_with_operation_events) as runner:
            result = runner.run(json.dumps({}))
    assert operation_events(result.execution_id) == [("CHAINED_INVOKE", "child", "SUCCEEDED")]


def test_nobody_listening_writes_no_event(signals_sent):
    from durable.signals import execution_status_changed

    receivers = execution_status_changed.receivers[:]
    execution_status_changed.receivers.clear()
    execution_status_changed.sender_receivers_cache.clear()
    try:
        with DurableTestRunner(event_workflows.outcome) as runner:
            result = runner.run(json.dumps({}))
    finally:
        execution_status_changed.receivers[:] = receivers
        execution_status_changed.sender_receivers_cache.clear()
    assert result.status == "SUCCEEDED"
    assert OutboxEvent.objects.count() == 0
