"""The engine's signal is at least once (durable.sinks): the product's receiver, given the same
news again by a real redelivery from the outbox, changes nothing a second time."""

import pytest

from approvals import workflows
from approvals.models import Document
from approvals.services import document_submit
from durable import clock, sinks
from durable.client import stop_execution
from durable.models import EventDelivery, Execution
from durable.testing import DurableTestRunner
from tests.approvals.fixtures import TEXT, make_people
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def local_webhooks(settings):
    settings.APPROVALS = {
        **getattr(settings, "APPROVALS", {}),
        "WEBHOOK_ALLOW_HTTP": True,
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True,
    }


def redeliver(execution_id, status: str) -> int:
    """What a process that died after sending but before recording it leaves: the signal's
    delivery due again. The pass then sends it again. Returns how many attempts it made."""
    rows = EventDelivery.objects.filter(event__execution_id=execution_id, event__status=status, sink="signal")
    assert rows.update(status="PENDING", next_attempt_at=clock.now()) == 1
    return sinks.deliver_due().attempted


def snapshot(document: Document) -> tuple:
    document.refresh_from_db()
    return (
        document.status,
        document.status_detail,
        document.execution_status,
        document.execution_status_at,
        document.updated_at,
    )


def test_a_stop_delivered_twice_ends_the_document_once(local_webhooks):
    people = make_people()
    with WebhookReceiver() as client_hook, DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document = document_submit(
            title="Coast road",
            text=TEXT,
            submitter=people["submitter"],
            callback_url=client_hook.url,
            webhook_key_id="key-1",
        )
        runner.wait_for_callback(str(document.execution_id))
        stop_execution(document.execution_id)
        first = snapshot(document)
        assert first[0] == "stopped"
        webhooks = Execution.objects.filter(function_name="document_webhook").count()
        assert webhooks == 1  # the client is to be told, once

        assert redeliver(document.execution_id, "STOPPED") == 1
        assert redeliver(document.execution_id, "RUNNING") == 1  # older news, again
        assert snapshot(document) == first
        assert Execution.objects.filter(function_name="document_webhook").count() == webhooks
