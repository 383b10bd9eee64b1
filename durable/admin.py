"""A read-only view of the journal in Django admin (the full timeline and actions come later)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from durable.models import Execution, HistoryEvent, Operation


class ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OperationInline(ReadOnlyInline):
    model = Operation
    fields = ("type", "sub_type", "name", "status", "attempt", "started_at", "ended_at", "result", "error")
    ordering = ("id",)


class HistoryInline(ReadOnlyInline):
    model = HistoryEvent
    fields = ("event_type", "name", "timestamp", "details")
    ordering = ("id",)


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("execution_name", "function_name", "status", "created_at", "ended_at", "invocation_count")
    list_filter = ("status", "function_name", "created_at")
    search_fields = ("id", "execution_name")
    inlines = (OperationInline, HistoryInline)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
