"""Events with real processes: RQ workers run the executions and send their ends to a real
webhook receiver; the workers' periodic pass delivers what a process committed but never sent."""

import pytest

from durable import sinks
from durable.client import get_execution, start_execution
from durable.models import EventDelivery
from durable.webhooks import verify_signature
from tests.durable import event_workflows
from tests.durable.events_helpers import SECRET, deliveries, received_events, webhook_settings
from tests.processes import wait_until
from tests.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.processes, pytest.mark.timeout(90)]


def worker_env(url: str) -> dict[str, str]:
    """The same sink for the worker processes, through the variables a deployment sets."""
    return {
        "DURABLE_EVENT_WEBHOOK_URL": url,
        "DURABLE_EVENT_WEBHOOK_SECRET": SECRET,
        "DURABLE_EVENT_WEBHOOK_ALLOW_HTTP": "true",
        "DURABLE_EVENT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "DURABLE_EVENT_RETRY_INITIAL_SECONDS": "0",
        "DURABLE_EVENT_AFTER_COMMIT_GRACE": "1",
    }


def delivered(execution_id: str, count: int) -> bool:
    rows = EventDelivery.objects.filter(event__execution_id=execution_id, sink="webhook", status="DELIVERED")
    return rows.count() == count


def test_a_whole_runs_events_reach_the_receiver_from_the_workers(workers, settings):
    with WebhookReceiver() as receiver:
        settings.DURABLE = {**settings.DURABLE, **webhook_settings(receiver.url)}
        workers(2, **worker_env(receiver.url))
        execution = start_execution(event_workflows.outcome, {"wait": 1})
        execution_id = str(execution.pk)
        wait_until(lambda: get_execution(execution_id).status != "RUNNING", 30, message="the execution's end")
        wait_until(lambda: delivered(execution_id, 2), 15, message="both events delivered")
    bodies = received_events(receiver)
    assert [(b["detail"]["executionId"], b["detail"]["status"]) for b in bodies] == [
        (execution_id, "RUNNING"),
        (execution_id, "SUCCEEDED"),
    ]
    for request in receiver.received:
        headers = request.headers
        assert verify_signature(SECRET, request.body, headers["X-Durable-Timestamp"], headers["X-Durable-Signature"])
    assert [d.attempts for d in deliveries(execution_id, "webhook")] == [1, 1]


def test_the_workers_pass_delivers_an_event_its_process_never_sent(workers, settings, monkeypatch):
    with WebhookReceiver() as receiver:
        settings.DURABLE = {**settings.DURABLE, **webhook_settings(receiver.url)}
        # This process commits the start and "dies" before sending it: only the outbox has it.
        monkeypatch.setattr(sinks, "deliver_after_commit", lambda written, found: None)
        execution = start_execution(event_workflows.outcome, {})
        execution_id = str(execution.pk)
        (start,) = deliveries(execution_id, "webhook")
        assert (start.status, start.attempts) == ("PENDING", 0)
        workers(1, **worker_env(receiver.url))
        wait_until(lambda: delivered(execution_id, 2), 30, message="the start sent by a worker's pass")
    statuses = [b["detail"]["status"] for b in received_events(receiver)]
    assert sorted(statuses) == ["RUNNING", "SUCCEEDED"]  # each once (the pass does not keep order)
    assert get_execution(execution_id).status == "SUCCEEDED"


def test_a_receiver_that_is_down_never_holds_up_the_workers(workers, settings):
    with WebhookReceiver() as receiver:
        url = receiver.url  # nothing listens here once the block ends
    settings.DURABLE = {**settings.DURABLE, **webhook_settings(url, EVENT_MAX_ATTEMPTS=3)}
    workers(1, **worker_env(url), DURABLE_EVENT_MAX_ATTEMPTS="3")
    ids = [str(start_execution(event_workflows.outcome, {}).pk) for _ in range(2)]
    wait_until(lambda: all(get_execution(i).status == "SUCCEEDED" for i in ids), 30, message="every execution")
    # One probe per pass while the sink fails: 4 deliveries x 3 attempts take a dozen passes.
    wait_until(
        lambda: EventDelivery.objects.filter(sink="webhook", status="FAILED").count() == 4,
        60,
        message="every webhook delivery given up",
    )
    assert not EventDelivery.objects.filter(sink="webhook").exclude(status="FAILED").exists()
    assert set(EventDelivery.objects.filter(sink="webhook").values_list("attempts", flat=True)) == {3}
