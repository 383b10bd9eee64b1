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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from durable import clock
from durable.exceptions import ValidationError
from durable.models import OPEN_STATUSES, Execution, ExecutionStatus, Operation

# However many rows are asked for, one listing reads at most this many.
MAX_LISTED = 1000


def search_executions(queryset: QuerySet[Execution], term: str) -> QuerySet[Execution]:
    """The executions whose id is `term` or whose name or label contains it (case-insensitive).

    A term that is a UUID (an execution's id, or a name drawn at random) matches the id or the
    whole name only: two index lookups, where a part of a name or label is a scan of every row.
    """
    term = term.strip()
    if not term:
        return queryset
    with contextlib.suppress(ValueError):
        return queryset.filter(Q(pk=uuid.UUID(term)) | Q(execution_name=term))
    return queryset.filter(Q(execution_name__icontains=term) | Q(label__icontains=term))


def is_text_search(term: str) -> bool:
    """Whether `search_executions` looks for a part of a text (a scan), not for an id or a
    whole name (a term that is a UUID)."""
    term = term.strip()
    if not term:
        return False
    try:
        uuid.UUID(term)
    except ValueError:
        return True
    return False


def filter_executions(
    *,
    status: str | None = None,
    function_name: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    search: str | None = None,
    label: str | None = None,
    waiting: str | None = None,
    limit: int = 50,
) -> list[Execution]:
    """Executions newest first, as the admin's list shows them; input, result and error unread.

    `label` matches part of the label (case-insensitive); `waiting` is a WaitKind.
    Raises ValidationError for a status or waiting kind that is not one, or a limit outside 1
    to MAX_LISTED.
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
    if label:
        rows = rows.filter(label__icontains=label.strip())
    if waiting:
        rows = waiting_kind(rows, waiting)
    return list(rows.order_by("-created_at", "pk")[:limit])


def callback_execution_id(callback_id: str) -> uuid.UUID | None:
    """The execution a callback id belongs to, or None if no callback has that id."""
    found: uuid.UUID | None = (
        Operation.objects.filter(callback_id=callback_id).values_list("execution_id", flat=True).first()
    )
    return found


class WaitKind:
    """What a RUNNING execution can be waiting for (the admin's filter offers these)."""

    TIMER = "timer"
    CALLBACK = "callback"
    RETRY = "retry"
    INVOKE = "invoke"
    RUNNING = "running"
    CHOICES = (
        (TIMER, "a timer"),
        (CALLBACK, "a callback"),
        (RETRY, "a retry"),
        (INVOKE, "an invoked execution"),
        (RUNNING, "running on a worker"),
    )


@dataclass(frozen=True)
class Wait:
    """One thing an execution waits for: a timer until `until`, a callback since `since`, a
    step's retry number `attempt` at `until`, an invoked child execution, or a worker."""

    kind: str
    name: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    callback_id: str | None = None
    child_execution_id: str | None = None
    worker: str | None = None

    def _of(self) -> str:
        """The retry's number, "of" the retries its strategy allows when it says (attempts - 1)."""
        if self.max_attempts:
            return f"{self.attempt} of {self.max_attempts - 1}"
        return str(self.attempt)

    @property
    def short(self) -> str:
        """One short line for the admin's list (the full text is `str(wait)`)."""
        name = self.name if not self.name or len(self.name) <= 28 else self.name[:27] + "…"
        label = f" {name!r}" if name else ""
        if self.kind == WaitKind.TIMER:
            return f"timer{label} until {_hm(self.until)}"
        if self.kind == WaitKind.CALLBACK:
            return f"callback{label} since {_hm(self.since)}"
        if self.kind == WaitKind.RETRY:
            return f"retry {self._of()}{label} at {_hm(self.until)}"
        if self.kind == WaitKind.INVOKE:
            return f"invoke{label} of child {(self.child_execution_id or '(starting)')[:8]}"
        return f"running on worker {self.worker}"

    def __str__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        if self.kind == WaitKind.TIMER:
            return f"timer{label}" + (f" until {_iso(self.until)}" if self.until else "")
        if self.kind == WaitKind.CALLBACK:
            since = f" since {_iso(self.since)}" if self.since else ""
            return f"callback{label} {self.callback_id}{since}" + (f" until {_iso(self.until)}" if self.until else "")
        if self.kind == WaitKind.RETRY:
            return f"retry {self._of()}{label} (attempt {(self.attempt or 0) + 1}) at {_iso(self.until)}"
        if self.kind == WaitKind.INVOKE:
            return f"invoke{label} of child {self.child_execution_id or '(starting)'}"
        return f"running on worker {self.worker}" + (f" until {_iso(self.until)}" if self.until else "")


def _wait_operations() -> Q:
    """The operations an execution waits on: open callbacks, waits and invokes, and steps with
    a retry (or a condition's next poll) scheduled."""
    return Q(status__literal_in=OPEN_STATUSES) & (
        Q(type__in=("CALLBACK", "WAIT", "CHAINED_INVOKE")) | Q(next_attempt_at__isnull=False)
    )


def waits(executions: Iterable[Execution], now: datetime | None = None) -> dict[str, list[Wait]]:
    """What each RUNNING execution of `executions` waits for, in one query for all of them
    (the worker that holds a live lease comes from the rows themselves)."""
    running = [e for e in executions if e.status == ExecutionStatus.RUNNING]
    found: dict[str, list[Wait]] = {str(e.pk): [] for e in running}
    if not running:
        return found
    rows = (
        Operation.objects.filter(execution_id__in=[e.pk for e in running])
        .filter(_wait_operations())
        .order_by("id")
        .values_list(
            "execution_id",
            "type",
            "name",
            "callback_id",
            "callback_deadline",
            "wait_until",
            "next_attempt_at",
            "attempt",
            "started_at",
            "child_execution_id",
            "max_attempts",
        )
    )
    for row in rows[:MAX_LISTED]:
        execution_id, kind, name, callback_id, deadline, wait_until, retry_at, attempt, started, child, most = row
        wait = _wait(kind, name, callback_id, deadline, wait_until, retry_at, attempt, started, child, most)
        if wait is not None:
            found[str(execution_id)].append(wait)
    moment = now or clock.now()
    for execution in running:
        expires = execution.lease_expires_at
        if execution.lease_owner and expires and expires > moment:
            found[str(execution.pk)].append(Wait(WaitKind.RUNNING, worker=execution.lease_owner, until=expires))
    return found


def _wait(
    kind: str,
    name: str | None,
    callback_id: str | None,
    deadline: datetime | None,
    wait_until: datetime | None,
    retry_at: datetime | None,
    attempt: int,
    started: datetime | None,
    child: Any,
    max_attempts: int | None = None,
) -> Wait | None:
    if retry_at is not None and kind not in ("WAIT", "CALLBACK"):
        return Wait(WaitKind.RETRY, name=name, until=retry_at, attempt=attempt, max_attempts=max_attempts)
    if kind == "CALLBACK" and callback_id:
        return Wait(WaitKind.CALLBACK, name=name, since=started, until=deadline, callback_id=callback_id)
    if kind == "WAIT":
        return Wait(WaitKind.TIMER, name=name, since=started, until=wait_until)
    if kind == "CHAINED_INVOKE":
        return Wait(WaitKind.INVOKE, name=name, since=started, child_execution_id=str(child) if child else None)
    return None


def open_operations(kind: str) -> QuerySet[Operation]:
    """The open operations of `kind` (a WaitKind other than RUNNING), of every execution: a
    range of the index durable_op_open (type, status). Raises ValidationError for another kind."""
    ops = Operation.objects.filter(_wait_operations())
    if kind == WaitKind.RETRY:
        ops = ops.filter(next_attempt_at__isnull=False).exclude(type__in=("WAIT", "CALLBACK"))
    elif kind == WaitKind.TIMER:
        ops = ops.filter(type="WAIT")
    elif kind == WaitKind.CALLBACK:
        # Every callback operation is written with its id (durable.operation.callback): no
        # condition on it, which the index could not answer.
        ops = ops.filter(type="CALLBACK")
    elif kind == WaitKind.INVOKE:
        ops = ops.filter(type="CHAINED_INVOKE")
    else:
        kinds = ", ".join(k for k, _ in WaitKind.CHOICES)
        raise ValidationError(f"waiting must be one of {kinds}, not {kind!r}")
    return ops


def waits_on(kind: str) -> Exists:
    """An EXISTS over the execution's open operations of `kind` (a WaitKind other than
    RUNNING). Raises ValidationError for another kind."""
    return Exists(open_operations(kind).filter(execution_id=OuterRef("pk")))


def on_a_worker(now: datetime) -> Q:
    """Executions a worker holds a live lease on."""
    return Q(lease_owner__isnull=False, lease_expires_at__gt=now)


def waiting_kind(queryset: QuerySet[Execution], kind: str, now: datetime | None = None) -> QuerySet[Execution]:
    """The RUNNING executions of `queryset` that wait for `kind` (a WaitKind): one IN
    subquery over the open operations of that kind (a range of durable_op_open: a kind few
    executions wait for costs what they are, not a probe of every execution), so a page of
    them is still one query. Raises ValidationError for another kind."""
    running = queryset.filter(status=ExecutionStatus.RUNNING)
    if kind == WaitKind.RUNNING:
        return running.filter(on_a_worker(now or clock.now()))
    return running.filter(pk__in=open_operations(kind).values("execution_id"))


def waiting_for(execution_ids: Iterable[Any]) -> dict[str, list[str]]:
    """What each RUNNING execution of `execution_ids` waits for, as text (see `waits`)."""
    executions = list(
        Execution.objects.filter(pk__in=list(execution_ids)).only("pk", "status", "lease_owner", "lease_expires_at")[
            :MAX_LISTED
        ]
    )
    return {pk: [str(w) for w in found] for pk, found in waits(executions).items() if found}


def _hm(moment: datetime | None) -> str:
    return moment.strftime("%m-%d %H:%M:%S") if moment else "-"


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"
