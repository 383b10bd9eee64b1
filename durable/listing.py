"""Finding executions: the one filter the admin's list and the shell's `durable_executions list`
both use, so an operator gets the same rows whichever door they come in by.

The admin's list filters by status, function and creation date and searches by id or part of
the name; `filter_executions` does the same for callers outside a request, and
`search_executions` is the search the admin's search box runs.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from durable.exceptions import ValidationError
from durable.models import Execution, ExecutionStatus, Operation

# However many rows are asked for, one listing reads at most this many.
MAX_LISTED = 1000


def search_executions(queryset: QuerySet[Execution], term: str) -> QuerySet[Execution]:
    """The executions whose id is `term` or whose name contains it (case-insensitive)."""
    term = term.strip()
    if not term:
        return queryset
    matches = Q(execution_name__icontains=term)
    with contextlib.suppress(ValueError):
        matches |= Q(pk=uuid.UUID(term))
    return queryset.filter(matches)


def filter_executions(
    *,
    status: str | None = None,
    function_name: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    search: str | None = None,
    limit: int = 50,
) -> list[Execution]:
    """Executions newest first, as the admin's list shows them; input, result and error unread.

    Raises ValidationError for a status that is not one, or a limit outside 1 to MAX_LISTED.
    """
    if not 1 <= limit <= MAX_LISTED:
        raise ValidationError(f"limit must be between 1 and {MAX_LISTED}, not {limit}")
    rows = Execution.objects.defer("input", "result", "error")
    if status is not None:
        if status.upper() not in ExecutionStatus.values:
            raise ValidationError(f"status must be one of {', '.join(ExecutionStatus.values)}, not {status!r}")
        rows = rows.filter(status=status.upper())
    if function_name is not None:
        rows = rows.filter(function_name=function_name)
    if created_after is not None:
        rows = rows.filter(created_at__gte=created_after)
    if created_before is not None:
        rows = rows.filter(created_at__lt=created_before)
    if search:
        rows = search_executions(rows, search)
    return list(rows.order_by("-created_at", "pk")[:limit])


def callback_execution_id(callback_id: str) -> uuid.UUID | None:
    """The execution a callback id belongs to, or None if no callback has that id."""
    found: uuid.UUID | None = (
        Operation.objects.filter(callback_id=callback_id).values_list("execution_id", flat=True).first()
    )
    return found


def waiting_for(execution_ids: Iterable[Any]) -> dict[str, list[str]]:
    """What each execution waits on (open callbacks, waits, step retries), in one query."""
    rows = (
        Operation.objects.filter(execution_id__in=list(execution_ids), status__in=("STARTED", "PENDING"))
        .filter(Q(type="CALLBACK") | Q(type="WAIT") | Q(next_attempt_at__isnull=False))
        .order_by("id")
        .values_list(
            "execution_id", "type", "name", "callback_id", "callback_deadline", "wait_until", "next_attempt_at"
        )
    )
    found: dict[str, list[str]] = {}
    for execution_id, kind, name, callback_id, deadline, wait_until, retry_at in rows[:MAX_LISTED]:
        label = f" {name!r}" if name else ""
        if kind == "CALLBACK" and callback_id:
            text = f"callback{label} {callback_id}" + (f" until {_iso(deadline)}" if deadline else "")
        elif kind == "WAIT":
            text = f"wait{label}" + (f" until {_iso(wait_until)}" if wait_until else "")
        elif retry_at:
            text = f"{kind.lower()}{label} retry at {_iso(retry_at)}"
        else:
            continue
        found.setdefault(str(execution_id), []).append(text)
    return found


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
