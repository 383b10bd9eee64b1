"""The event outbox in Django admin: each event with its deliveries (one per sink), filtered by
sink and status, and a "retry now" action for deliveries that failed or wait for a retry.

Read-only but for that action, which needs the `durable.retry_event_delivery` permission and is
recorded in each execution's history (as the executions' own actions are); an execution that
was purged since keeps no history, and its event is retried all the same.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from durable import sinks
from durable.client import record_operator_action
from durable.exceptions import ExecutionNotFoundError
from durable.models import EventDelivery, EventDeliveryStatus, OutboxEvent


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EventDeliveryInline(_ReadOnly, admin.TabularInline):  # type: ignore[type-arg]
    model = EventDelivery
    extra = 0
    fields = ("sink", "status", "attempts", "next_attempt_at", "delivered_at", "last_error")
    readonly_fields = fields


def _retry(request: HttpRequest, deliveries: QuerySet[EventDelivery]) -> None:
    """Retry these deliveries now and record who did it in each execution's history."""
    retried = list(
        deliveries.exclude(status=EventDeliveryStatus.DELIVERED).values_list(
            "pk", "sink", "event_id", "event__execution_id"
        )
    )
    if not retried:
        messages.warning(request, "Nothing to retry: those deliveries were delivered.")
        return
    count = sinks.retry_now([pk for pk, *_ in retried])
    user = request.user.get_username()
    for _, sink, event_id, execution_id in retried:
        with contextlib.suppress(ExecutionNotFoundError):  # purged since: nothing to record it in
            record_operator_action(
                execution_id, action="retry event delivery", user=user, Sink=sink, EventId=str(event_id)
            )
    messages.success(request, f"{count} deliveries retried now; see their status.")


@admin.register(OutboxEvent)
class OutboxEventAdmin(_ReadOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("created_at", "detail_type", "function_name", "execution_link", "status", "deliveries_summary")
    list_filter = ("detail_type", "status", "deliveries__sink", "deliveries__status", "created_at")
    search_fields = ("=execution_id", "execution_name")
    search_help_text = "An execution's id, or part of its name."
    ordering = ("-created_at",)
    inlines = (EventDeliveryInline,)
    fields = (
        "id",
        "detail_type",
        "function_name",
        "execution_link",
        "status",
        "previous_status",
        "operation_id",
        "created_at",
        "detail_json",
    )
    readonly_fields = fields
    actions = ("retry_deliveries",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxEvent]:
        return super().get_queryset(request).prefetch_related("deliveries")

    @admin.display(description="execution")
    def execution_link(self, event: OutboxEvent) -> str:
        url = reverse("admin:durable_execution_change", args=[event.execution_id])
        return format_html('<a href="{}">{}</a>', url, event.execution_name)

    @admin.display(description="deliveries")
    def deliveries_summary(self, event: OutboxEvent) -> str:
        return ", ".join(f"{d.sink}: {d.status.lower()} ({d.attempts})" for d in event.deliveries.all())

    @admin.display(description="detail")
    def detail_json(self, event: OutboxEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.detail, indent=2, sort_keys=True))

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("durable.retry_event_delivery"))

    @admin.action(description="Retry their failed or pending deliveries now", permissions=["retry"])
    def retry_deliveries(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        _retry(request, EventDelivery.objects.filter(event__in=queryset))


@admin.register(EventDelivery)
class EventDeliveryAdmin(_ReadOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("event_link", "sink", "status", "attempts", "next_attempt_at", "delivered_at", "last_error")
    list_filter = ("sink", "status", "event__detail_type")
    search_fields = ("=event__execution_id", "=event__id")
    search_help_text = "An execution's id, or an event's."
    ordering = ("-id",)
    list_select_related = ("event",)
    actions = ("retry_now",)

    @admin.display(description="event")
    def event_link(self, delivery: EventDelivery) -> str:
        url = reverse("admin:durable_outboxevent_change", args=[delivery.event_id])
        event = delivery.event
        return format_html('<a href="{}">{} {} {}</a>', url, event.execution_name, event.status, event.created_at)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("durable.retry_event_delivery"))

    @admin.action(description="Retry now", permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[EventDelivery]) -> None:
        _retry(request, queryset)
