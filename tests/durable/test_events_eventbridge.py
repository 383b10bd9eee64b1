"""The EventBridge sink: `put_events` through boto3, checked with botocore's Stubber."""

import json

import pytest
from botocore.stub import Stubber

from durable import sinks
from durable.client import start_execution
from durable.testing import DurableTestRunner
from tests.durable import event_workflows
from tests.durable.events_helpers import deliveries, events_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def eventbridge(settings):
    """An EventBridge sink whose client is stubbed: each expected request is checked exactly."""
    settings.DURABLE = {
        **settings.DURABLE,
        "EVENT_SINKS": [
            {
                "type": "eventbridge",
                "name": "bus",
                "event_bus_name": "durable-events",
                "source": "example.documents",
                "region": "eu-west-1",
            }
        ],
        "EVENT_RETRY_INITIAL_SECONDS": 0,
        "EVENT_AFTER_COMMIT_GRACE": 0,
    }
    sinks._clients.clear()
    sinks._cooling.clear()
    (sink,) = [s for s in sinks.configured() if s.name == "bus"]
    client = sinks.eventbridge_client(sink)
    with Stubber(client) as stubber:
        yield stubber
    sinks._clients.clear()
    sinks._cooling.clear()


def entry(event) -> dict:
    return {
        "Source": "example.documents",
        "DetailType": "Durable Execution Status Change",
        "Detail": json.dumps(event.detail, sort_keys=True, separators=(",", ":")),
        "EventBusName": "durable-events",
        "Time": event.created_at,
        "Resources": [event.detail["durableExecutionArn"]],
    }


ACCEPTED = {"FailedEntryCount": 0, "Entries": [{"EventId": "11111111-2222-3333-4444-555555555555"}]}
THROTTLED = {
    "FailedEntryCount": 1,
    "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}],
}


@pytest.fixture
def unsent(monkeypatch):
    """Events written but not sent after their commit (so each request is stubbed knowing its
    event): the workers' pass sends them."""
    monkeypatch.setattr(sinks, "deliver_after_commit", lambda written, found: None)


def test_each_status_change_is_put_with_its_detail(eventbridge, unsent):
    with DurableTestRunner(event_workflows.outcome) as runner:
        result = runner.run(json.dumps({}))
        started, ended = events_of(result.execution_id)
        eventbridge.add_response("put_events", ACCEPTED, {"Entries": [entry(started)]})
        eventbridge.add_response("put_events", ACCEPTED, {"Entries": [entry(ended)]})
        sinks.deliver_due()
    eventbridge.assert_no_pending_responses()
    assert [(d.status, d.attempts) for d in deliveries(result.execution_id, "bus")] == [("DELIVERED", 1)] * 2
    detail = json.loads(entry(ended)["Detail"])
    assert (detail["status"], detail["previousStatus"]) == ("SUCCEEDED", "RUNNING")
    assert detail["functionName"] == "tests.durable.event_workflows.outcome"
    assert detail["executionId"] == result.execution_id


def test_a_failed_entry_counts_as_a_failure_and_is_retried(eventbridge, unsent):
    with DurableTestRunner(event_workflows.outcome):
        execution = start_execution(event_workflows.outcome, {})
        (started,) = events_of(str(execution.pk))
        eventbridge.add_response("put_events", THROTTLED, {"Entries": [entry(started)]})
        first = sinks.deliver_due()
        (delivery,) = deliveries(str(execution.pk), "bus")
        assert (delivery.status, delivery.attempts) == ("PENDING", 1)
        assert "ThrottlingException: Rate exceeded" in delivery.last_error
        assert first.retry_later == 1
        eventbridge.add_client_error("put_events", "InternalException", "try again", 500)
        sinks.deliver_due()
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("PENDING", 2)
        assert "InternalException" in delivery.last_error
        eventbridge.add_response("put_events", ACCEPTED, {"Entries": [entry(started)]})
        sinks.deliver_due()
    eventbridge.assert_no_pending_responses()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("DELIVERED", 3, "")


def test_the_last_failed_attempt_marks_the_delivery_failed(eventbridge, unsent, settings):
    settings.DURABLE = {**settings.DURABLE, "EVENT_MAX_ATTEMPTS": 2}
    with DurableTestRunner(event_workflows.outcome):
        execution = start_execution(event_workflows.outcome, {})
        (started,) = events_of(str(execution.pk))
        for _ in range(2):
            eventbridge.add_response("put_events", THROTTLED, {"Entries": [entry(started)]})
            sinks.deliver_due()
        assert sinks.deliver_due().attempted == 0  # given up: nothing is due
    eventbridge.assert_no_pending_responses()
    (delivery,) = deliveries(str(execution.pk), "bus")
    assert (delivery.status, delivery.attempts) == ("FAILED", 2)
