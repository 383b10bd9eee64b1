"""The journal in Django admin: executions, a timeline of their operations, their history, and
operator actions (stop, redrive, re-enqueue, complete or fail a callback), each confirmed and
recorded in the history. The journal itself is never edited here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from durable import charts
from durable import operator_actions as actions
from durable.charts import STATUS_COLORS
from durable.client import get_execution, record_operator_action
from durable.dashboard import DEFAULT_WINDOW, WINDOWS, dashboard
from durable.errors import ErrorObject
from durable.exceptions import DurableExecutionsError, ExecutionNotFoundError
from durable.listing import WaitKind, is_text_search, search_executions, waiting_kind, waits
from durable.models import Execution, ExecutionStatus, Operation
from durable.operator_actions import PERMISSIONS, OperatorAction
from durable.timeline import (
    TIMELINE_MAX_ROWS,
    TIMELINE_ROWS,
    build_timeline,
    pretty_json,
    pretty_value,
    preview,
    stack_trace,
)

# History events shown on an execution's page unless all are asked for.
HISTORY_ROWS = 500


def _moment(moment: datetime) -> str:
    """A date and time on two short lines (the list's columns are narrow at 1280 px)."""
    local = timezone.localtime(moment)
    return format_html('<span class="moment">{}<br>{}</span>', local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S"))


class StopForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500, help_text="Recorded as the execution's error.")


class ConfirmForm(forms.Form):
    pass


class CallbackSuccessForm(forms.Form):
    result = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        help_text="Delivered to the handler as it is (a raw string; JSON if the handler expects JSON).",
    )


class CallbackFailureForm(forms.Form):
    error_type = forms.CharField(max_length=200, initial="CallbackError")
    message = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}))


class WaitingFilter(admin.SimpleListFilter):
    """RUNNING executions by what they wait for (one EXISTS subquery: durable.listing)."""

    title = "waiting for"
    parameter_name = "waiting"

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, str], ...]:
        return WaitKind.CHOICES

    def queryset(self, request: HttpRequest, queryset: QuerySet[Execution]) -> QuerySet[Execution]:
        kind = self.value()
        if kind in dict(WaitKind.CHOICES):
            return waiting_kind(queryset, kind)
        return queryset


class AttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, str], ...]:
        return (("yes", "Yes"), ("no", "No"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Execution]) -> QuerySet[Execution]:
        if self.value() == "yes":
            return queryset.exclude(attention="")
        if self.value() == "no":
            return queryset.filter(attention="")
        return queryset


class LabelFilter(admin.SimpleListFilter):
    """Part of a label, typed in (labels are too many to list as choices)."""

    title = "label"
    parameter_name = "label"
    template = "admin/durable/execution/label_filter.html"

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, str], ...]:
        return (("", ""),)  # a filter without lookups is not shown at all

    def choices(self, changelist: Any) -> Any:
        # One "choice": the text box, and the page's other filters to keep when it is sent.
        kept = [(k, v) for k, v in changelist.params.items() if k != self.parameter_name]
        yield {"selected": bool(self.value()), "value": self.value() or "", "kept": kept}

    def queryset(self, request: HttpRequest, queryset: QuerySet[Execution]) -> QuerySet[Execution]:
        if term := (self.value() or "").strip():
            return queryset.filter(label__icontains=term)
        return queryset


# The list counts at most this many matching executions (a page count beyond it would cost a
# scan of every row for a number nobody reads).
COUNT_CAP = 10_000


class CappedPaginator(Paginator):  # type: ignore[type-arg]
    """Counts the matching rows up to COUNT_CAP (a COUNT over a LIMIT): the list of 100,000
    executions pages in the time of its first 10,000 index entries, not of the whole table."""

    @cached_property
    def count(self) -> int:
        rows: QuerySet[Execution] = self.object_list  # type: ignore[assignment]
        return int(rows.order_by()[:COUNT_CAP].count())


class _CreationSpan:
    """Stands in for the changelist's rows in Django's date_hierarchy tag: the span of creation
    times from two index lookups (the first and the last execution of the whole table), and
    every year, month or day within it, instead of a DISTINCT over every matching row. A link
    may lead to an empty page; none is missing."""

    def __init__(self, changelist: ChangeList) -> None:
        self.params = changelist.params
        ordered = Execution.objects.order_by("created_at").values_list("created_at", flat=True)
        first, last = ordered.first(), ordered.reverse().first()
        self.span = (timezone.localtime(first), timezone.localtime(last)) if first and last else None

    def aggregate(self, **_: Any) -> dict[str, datetime | None]:
        return {"first": self.span[0], "last": self.span[1]} if self.span else {"first": None, "last": None}

    def datetimes(self, field_name: str, kind: str) -> list[datetime]:
        if self.span is None:
            return []
        first, last = self.span
        zone = timezone.get_current_timezone()
        try:
            year = int(self.params.get(f"{field_name}__year") or first.year)
            month = int(self.params.get(f"{field_name}__month") or first.month)
            if kind == "year":
                return [datetime(y, 1, 1, tzinfo=zone) for y in range(first.year, last.year + 1)]
            if kind == "month":
                months = [
                    (year, m) for m in range(1, 13) if (first.year, first.month) <= (year, m) <= (last.year, last.month)
                ]
                return [datetime(y, m, 1, tzinfo=zone) for y, m in months]
            days = [datetime(year, month, 1, tzinfo=zone) + timedelta(days=n) for n in range(31)]
        except (ValueError, OverflowError):
            return []
        return [d for d in days if d.month == month and first.date() <= d.date() <= last.date()]


class _CheapDates:
    """The changelist as Django's date_hierarchy tag sees it, with `_CreationSpan` for rows."""

    def __init__(self, changelist: ChangeList) -> None:
        self._changelist = changelist
        self.queryset = _CreationSpan(changelist)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._changelist, name)


class ExecutionChangeList(ChangeList):
    """The page's rows, each given what it waits for in one query for the whole page."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        found = waits(self.result_list)
        for execution in self.result_list:
            execution.page_waits = found.get(str(execution.pk), [])

    def get_ordering(self, request: HttpRequest, queryset: QuerySet[Execution]) -> list[Any]:
        """Newest first; when a part of a name or label is looked for, by an expression of the
        creation time that no index serves. Every row must be read to test the text anyway: in
        one pass through the table, keeping the newest page as it goes, rather than walking the
        list's index and fetching each row in its order (on SQLite, four to five times slower
        with 100,000 executions when few match)."""
        ordering: list[Any] = list(super().get_ordering(request, queryset))
        if not (is_text_search(self.query) or (self.params.get(LabelFilter.parameter_name) or "").strip()):
            return ordering
        by_text = {
            "-created_at": Coalesce("created_at", "created_at").desc(),
            "created_at": Coalesce("created_at", "created_at").asc(),
        }
        return [by_text.get(field, field) if isinstance(field, str) else field for field in ordering]

    @property
    def cheap_dates(self) -> _CheapDates:
        return _CheapDates(self)


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("execution", "function_name", "status_shown", "waiting_for", "when")
    list_display_links = ("execution",)
    list_filter = ("status", WaitingFilter, AttentionFilter, LabelFilter, "function_name", "created_at")
    date_hierarchy = "created_at"
    search_fields = ("execution_name",)
    search_help_text = "An execution's id, or part of its name or label."
    ordering = ("-created_at",)
    # With very many executions: no COUNT(*) of the whole table beside the filtered one, and a
    # count of the filtered rows that stops at COUNT_CAP.
    show_full_result_count = False
    paginator = CappedPaginator
    change_list_template = "admin/durable/execution/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Execution]:
        # A list page never shows inputs, results or errors (each up to 256 KiB).
        return super().get_queryset(request).defer("input", "result", "error")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ExecutionChangeList

    @admin.display(description="Execution / label", ordering="execution_name")
    def execution(self, execution: Execution) -> str:
        name = execution.execution_name
        short = name if len(name) <= 24 else name[:23] + "…"
        if not execution.label:
            return format_html('<span class="name" title="{}">{}</span>', name, short)
        return format_html(
            '<span class="name" title="{}">{}</span><span class="label" title="{}">{}</span>',
            name,
            short,
            execution.label,
            execution.label,
        )

    @admin.display(description="Started / ended", ordering="created_at")
    def when(self, execution: Execution) -> str:
        if execution.ended_at is None:
            return _moment(execution.created_at)
        return format_html("{}<br>{}", _moment(execution.created_at), _moment(execution.ended_at))

    @admin.display(description="Status", ordering="status")
    def status_shown(self, execution: Execution) -> str:
        if not execution.attention:
            return execution.status
        return format_html(
            '{}<br><span class="attention" title="needs attention: {}">⚠ {}</span>',
            execution.status,
            execution.attention,
            execution.attention,
        )

    @admin.display(description="Waiting for / next wake-up", ordering="wake_at")
    def waiting_for(self, execution: Execution) -> str:
        """What it waits for, and when it is next invoked (its wake_at: a timer's end, a
        retry's time, its timeout while it waits on a callback)."""
        if execution.status != ExecutionStatus.RUNNING:
            return "—"
        found = getattr(execution, "page_waits", [])
        waits_html = format_html_join(
            "", '<div class="wait wait-{}" title="{}">{}</div>', ((w.kind, str(w), w.short) for w in found)
        )
        if execution.wake_at is None:
            return waits_html or "—"
        wake = timezone.localtime(execution.wake_at).strftime("%Y-%m-%d %H:%M:%S")
        return format_html('{}<div class="wake">next wake-up {}</div>', waits_html, wake)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Execution], search_term: str
    ) -> tuple[QuerySet[Execution], bool]:
        # The same search as `durable_executions list --search` (durable.listing).
        return search_executions(queryset, search_term), False

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(view)  # staff login and CSRF protection

        return [
            path("operations/", wrap(self.operations_view), name="durable_execution_operations"),
            path("<uuid:object_id>/stop/", wrap(self.stop_view), name="durable_execution_stop"),
            path("<uuid:object_id>/redrive/", wrap(self.redrive_view), name="durable_execution_redrive"),
            path("<uuid:object_id>/reenqueue/", wrap(self.reenqueue_view), name="durable_execution_reenqueue"),
            path(
                "<uuid:object_id>/callbacks/<str:callback_id>/succeed/",
                wrap(self.callback_success_view),
                name="durable_execution_callback_succeed",
            ),
            path(
                "<uuid:object_id>/callbacks/<str:callback_id>/fail/",
                wrap(self.callback_failure_view),
                name="durable_execution_callback_fail",
            ),
            *super().get_urls(),
        ]

    # The operations page: charts over the last hours or days.

    def operations_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        numbers = dashboard(request.GET.get("window", DEFAULT_WINDOW))
        hourly = WINDOWS[numbers.window][1] == "hour"
        statuses = list(ExecutionStatus.values)
        latency = [(row.bucket, {"p50": row.p50, "p95": row.p95}) for row in numbers.latency]
        backlog = [(kind.replace("_", " "), n) for kind, n in numbers.backlog.items()]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Durable executions: operations",
            "numbers": numbers,
            "windows": list(WINDOWS),
            "statuses": [(status, STATUS_COLORS[status]) for status in statuses],
            "by_status_chart": charts.stacked_bars(
                "Executions started, by status now", numbers.buckets, numbers.by_status, statuses, hourly
            ),
            "latency_chart": charts.lines(
                "Step attempt latency (p50, p95)", latency, ("p50", "p95"), numbers.since, numbers.now
            ),
            "latency": numbers.latency,
            "backlog_chart": charts.horizontal_bars("Running executions now", backlog),
            "failures_chart": charts.horizontal_bars(
                "Failed or timed out, by function", numbers.failures, STATUS_COLORS["FAILED"]
            ),
        }
        return TemplateResponse(request, "admin/durable/execution/operations.html", context)

    # The execution's page.

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        execution = self._execution(request, object_id)
        open_callbacks = list(
            execution.operations.filter(type="CALLBACK", status="STARTED", callback_id__isnull=False).order_by("id")
        )
        # A large journal's history is long too: the first HISTORY_ROWS events, and a way to all.
        limit = TIMELINE_MAX_ROWS * 4 if request.GET.get("history") == "all" else HISTORY_ROWS
        # Rows, each one event or two (a step's start and end written together): cut by events.
        events = [e for row in execution.history.order_by("id")[: limit + 1] for e in row.events()][: limit + 1]
        history = [{"event": event, "details": preview(pretty_value(event.details), 2000)} for event in events[:limit]]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{execution.function_name} · {execution.execution_name}",
            "execution": execution,
            "input": pretty_json(execution.input),
            "result": pretty_json(execution.result),
            "error": execution.error,
            "error_stack": stack_trace(execution.error),
            "timeline": build_timeline(
                execution, limit=TIMELINE_MAX_ROWS if request.GET.get("timeline") == "all" else TIMELINE_ROWS
            ),
            "history": history,
            "history_more": len(events) > limit,
            "open_callbacks": open_callbacks if execution.status == ExecutionStatus.RUNNING else [],
            "waiting": waits([execution]).get(str(execution.pk), []),
            # The executions its invokes started (context.invoke), in order.
            "invoked": list(execution.child_executions.order_by("created_at")[:100]),
            "can": self._abilities(request, execution),
        }
        return TemplateResponse(request, "admin/durable/execution/detail.html", context)

    def _execution(self, request: HttpRequest, object_id: Any) -> Execution:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            return get_execution(str(object_id))
        except ExecutionNotFoundError:
            raise Http404(f"no execution {object_id}") from None

    def _abilities(self, request: HttpRequest, execution: Execution) -> dict[str, bool]:
        running = execution.status == ExecutionStatus.RUNNING
        user = request.user
        return {
            "stop": running and user.has_perm("durable.stop_execution"),
            "redrive": execution.status == ExecutionStatus.FAILED and user.has_perm("durable.redrive_execution"),
            "reenqueue": running and user.has_perm("durable.reenqueue_execution"),
            "complete_callback": running and user.has_perm("durable.complete_callback"),
        }

    # Actions: GET asks for confirmation, POST (with confirm=yes) acts and records who did it.

    def _act(
        self,
        request: HttpRequest,
        object_id: Any,
        *,
        action: OperatorAction,
        question: str,
        form_class: type[forms.Form],
        perform: Callable[[Execution, dict[str, Any]], dict[str, Any]],
    ) -> HttpResponse:
        execution = self._execution(request, object_id)
        if not request.user.has_perm(f"durable.{PERMISSIONS[action]}"):
            raise PermissionDenied
        form = form_class(request.POST if request.method == "POST" else None)
        if request.method == "POST" and request.POST.get("confirm") == "yes" and form.is_valid():
            try:
                with transaction.atomic():
                    details = perform(execution, form.cleaned_data)
                    record_operator_action(execution.pk, action=action, user=request.user.get_username(), **details)
            except DurableExecutionsError as exc:
                messages.error(request, f"Nothing was changed: {exc}")
            else:
                messages.success(request, f"Done: {question.rstrip('?')}.")
            return HttpResponseRedirect(reverse("admin:durable_execution_change", args=[execution.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": question,
            "execution": execution,
            "form": form,
            "action": action,
        }
        return TemplateResponse(request, "admin/durable/execution/confirm.html", context)

    def stop_view(self, request: HttpRequest, object_id: uuid.UUID) -> HttpResponse:
        def perform(execution: Execution, data: dict[str, Any]) -> dict[str, Any]:
            return actions.stop(execution.pk, data["reason"])

        return self._act(
            request,
            object_id,
            action=OperatorAction.STOP,
            question="Stop this execution?",
            form_class=StopForm,
            perform=perform,
        )

    def redrive_view(self, request: HttpRequest, object_id: uuid.UUID) -> HttpResponse:
        def perform(execution: Execution, data: dict[str, Any]) -> dict[str, Any]:
            return actions.redrive(execution.pk)

        return self._act(
            request,
            object_id,
            action=OperatorAction.REDRIVE,
            question="Redrive this failed execution from its last completed operation?",
            form_class=ConfirmForm,
            perform=perform,
        )

    def reenqueue_view(self, request: HttpRequest, object_id: uuid.UUID) -> HttpResponse:
        def perform(execution: Execution, data: dict[str, Any]) -> dict[str, Any]:
            return actions.reenqueue(execution.pk)

        return self._act(
            request,
            object_id,
            action=OperatorAction.REENQUEUE,
            question="Re-enqueue this execution now?",
            form_class=ConfirmForm,
            perform=perform,
        )

    def _callback(self, request: HttpRequest, execution_id: uuid.UUID, callback_id: str) -> None:
        # Permissions first: who may not act learns nothing of which callback ids exist.
        self._execution(request, execution_id)
        if not request.user.has_perm(f"durable.{PERMISSIONS[OperatorAction.COMPLETE_CALLBACK]}"):
            raise PermissionDenied
        if not Operation.objects.filter(execution_id=execution_id, callback_id=callback_id).exists():
            raise Http404(f"execution {execution_id} has no callback {callback_id}")

    def callback_success_view(self, request: HttpRequest, object_id: uuid.UUID, callback_id: str) -> HttpResponse:
        self._callback(request, object_id, callback_id)

        def perform(execution: Execution, data: dict[str, Any]) -> dict[str, Any]:
            return actions.complete_callback(callback_id, data["result"])

        return self._act(
            request,
            object_id,
            action=OperatorAction.COMPLETE_CALLBACK,
            question=f"Complete callback {callback_id} with this result?",
            form_class=CallbackSuccessForm,
            perform=perform,
        )

    def callback_failure_view(self, request: HttpRequest, object_id: uuid.UUID, callback_id: str) -> HttpResponse:
        self._callback(request, object_id, callback_id)

        def perform(execution: Execution, data: dict[str, Any]) -> dict[str, Any]:
            return actions.fail_callback(callback_id, ErrorObject(data["error_type"], data["message"]).to_dict())

        return self._act(
            request,
            object_id,
            action=OperatorAction.FAIL_CALLBACK,
            question=f"Fail callback {callback_id}?",
            form_class=CallbackFailureForm,
            perform=perform,
        )


from durable import admin_events  # noqa: E402, F401 - the event outbox's pages
