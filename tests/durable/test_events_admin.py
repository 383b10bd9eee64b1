"""The event outbox in the admin: events with their deliveries, filters by sink and status, and
a "retry now" that needs its permission and is recorded in the execution's history."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from durable import sinks
from durable.models import EventDelivery, HistoryEvent
from durable.testing import DurableTestRunner
from tests.durable import event_workflows
from tests.durable.events_helpers import deliveries, events_of, webhook_settings
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db(transaction=True)
VIEW = ("view_outboxevent", "view_eventdelivery", "view_execution")


def client_with(username, *codenames) -> Client:
    user = get_user_model().objects.create_user(username, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="durable", codename__in=codenames))
    client = Client()
    client.force_login(get_user_model().objects.get(pk=user.pk))
    return client


@pytest.fixture(autouse=True)
def listening():
    """A receiver of the signal, as a product has: the signal is a sink too."""
    from durable.signals import execution_status_changed

    def receiver(sender, **kwargs):
        pass

    execution_status_changed.connect(receiver)
    yield
    execution_status_changed.disconnect(receiver)


@pytest.fixture
def dead_delivery(settings):
    """A run whose webhook deliveries failed for good (nothing listened), then a receiver that is up."""
    sinks._cooling.clear()
    with WebhookReceiver() as gone:
        url = gone.url
    settings.DURABLE = {**settings.DURABLE, **webhook_settings(url, EVENT_MAX_ATTEMPTS=1)}
    with DurableTestRunner(event_workflows.outcome) as runner:
        result = runner.run(json.dumps({}))
    assert [d.status for d in deliveries(result.execution_id, "webhook")] == ["FAILED", "FAILED"]
    yield result.execution_id
    sinks._cooling.clear()


def test_the_outbox_pages_show_events_with_their_deliveries(dead_delivery):
    operator = client_with("viewer", *VIEW)
    page = operator.get("/admin/durable/outboxevent/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Durable Execution Status Change" in text
    assert "webhook: failed (1)" in text
    assert "signal: delivered (1)" in text
    failed = operator.get("/admin/durable/eventdelivery/", {"sink": "webhook", "status": "FAILED"})
    assert failed.status_code == 200
    assert failed.context["cl"].result_count == 2
    assert operator.get("/admin/durable/eventdelivery/", {"status": "PENDING"}).context["cl"].result_count == 0
    event = events_of(dead_delivery)[1]
    detail = operator.get(f"/admin/durable/outboxevent/{event.pk}/change/")
    assert detail.status_code == 200
    assert "SUCCEEDED" in detail.content.decode()
    assert "POST 127.0.0.1 failed" in detail.content.decode()  # the delivery's last error
    assert Client().get("/admin/durable/outboxevent/").status_code == 302  # not logged in


def test_retry_now_delivers_and_is_recorded(dead_delivery, settings):
    failed = [d.pk for d in deliveries(dead_delivery, "webhook")]
    with WebhookReceiver() as receiver:
        settings.DURABLE = {**settings.DURABLE, "EVENT_WEBHOOK_URL": receiver.url}
        viewer = client_with("viewer", *VIEW)
        refused = viewer.post(
            "/admin/durable/eventdelivery/", {"action": "retry_now", "_selected_action": failed}, follow=True
        )
        assert refused.status_code == 200
        assert receiver.received == []  # the action is not there for those without the permission
        assert {d.status for d in deliveries(dead_delivery, "webhook")} == {"FAILED"}

        operator = client_with("operator", *VIEW, "retry_event_delivery")
        done = operator.post(
            "/admin/durable/eventdelivery/", {"action": "retry_now", "_selected_action": failed}, follow=True
        )
        assert done.status_code == 200
        assert "2 deliveries retried now" in done.content.decode()
    assert [json.loads(r.body)["detail"]["status"] for r in receiver.received] == ["RUNNING", "SUCCEEDED"]
    assert [(d.status, d.attempts) for d in deliveries(dead_delivery, "webhook")] == [("DELIVERED", 1)] * 2
    recorded = HistoryEvent.objects.filter(execution_id=dead_delivery, event_type="OperatorAction")
    assert [(e.details["Action"], e.details["User"], e.details["Sink"]) for e in recorded] == [
        ("retry event delivery", "operator", "webhook")
    ] * 2
    assert not EventDelivery.objects.filter(status="FAILED").exists()
