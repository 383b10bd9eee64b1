"""What the event outbox's tests share: the events of an execution, in order, and what a sink got."""

from __future__ import annotations

import json

from durable.models import EventDelivery, OutboxEvent
from tests.webhook_receiver import WebhookReceiver

SECRET = "events-test-secret"  # only these tests' receivers know it


def events_of(execution_id: str, detail_type: str = "Durable Execution Status Change") -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(execution_id=execution_id, detail_type=detail_type).order_by("created_at"))


def statuses(execution_id: str) -> list[tuple[str, str]]:
    return [(e.previous_status, e.status) for e in events_of(execution_id)]


def deliveries(execution_id: str, sink: str) -> list[EventDelivery]:
    return list(EventDelivery.objects.filter(event__execution_id=execution_id, sink=sink).order_by("event__created_at"))


def received_events(receiver: WebhookReceiver) -> list[dict]:
    return [json.loads(request.body) for request in receiver.received]


def webhook_settings(url: str, **more: object) -> dict:
    """settings.DURABLE entries for one webhook sink at `url` (loopback, plain http: tests only)."""
    return {
        "EVENT_WEBHOOK_URL": url,
        "EVENT_WEBHOOK_SECRET": SECRET,
        "EVENT_WEBHOOK_ALLOW_HTTP": True,
        "EVENT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True,
        "EVENT_DELIVERY_TIMEOUT": 2,
        "EVENT_RETRY_INITIAL_SECONDS": 0,
        "EVENT_AFTER_COMMIT_GRACE": 0,
        **more,
    }
