"""The purge's reads and deletes: ended executions past a cutoff, removed batch by batch.

Candidates are read outside any transaction, by index `durable_exec_ended` (function name, end
time), in the order of their end with a cursor past the last one read, so executions kept by the
product's hold are read once per purge, not once per batch. Each batch is deleted in a short
transaction of its own: the executions still ended and past the cutoff are locked (a redrive of
one waits, then finds it gone: whoever commits first wins), their history and operations deleted
by execution id (the starts their rows hold counted first: a row may be two events), the links to
them from other executions cleared (what the models' SET_NULL says) and the executions deleted,
six statements each built whole for the batch's size.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, QuerySet

from durable.models import Execution, ExecutionStatus, HistoryEvent, Operation

ENDED = (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.STOPPED)


@dataclass(frozen=True)
class Deleted:
    """The rows one batch deleted."""

    executions: int = 0
    operations: int = 0
    events: int = 0


def functions_ended_before(before: datetime) -> list[str]:
    """The function names with an execution that ended before `before` (an index-only scan)."""
    names = Execution.objects.filter(ended_at__lt=before).order_by().values_list("function_name", flat=True)
    return sorted(set(names.distinct()))


def expired(
    function_name: str, cutoff: datetime, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[tuple[uuid.UUID, datetime]]:
    """Up to `limit` ended executions of a function that ended before `cutoff`, oldest first,
    after the cursor `after` (end time, id): (id, end time) each."""
    rows = expired_query(function_name, cutoff, after).values_list("pk", "ended_at")[:limit]
    return [(pk, ended_at) for pk, ended_at in rows if ended_at is not None]


def expired_query(
    function_name: str, cutoff: datetime, after: tuple[datetime, uuid.UUID] | None = None
) -> QuerySet[Execution]:
    """A function's ended executions that ended before `cutoff` (and after the cursor), oldest
    first (index durable_exec_ended)."""
    candidates = Execution.objects.filter(function_name=function_name, ended_at__lt=cutoff, status__in=ENDED)
    if after is not None:
        # One range of the index from the cursor's end time on (a disjunction would not be).
        candidates = candidates.filter(ended_at__gte=after[0]).exclude(ended_at=after[0], pk__lte=after[1])
    return candidates.order_by("ended_at", "pk")


def count_operations(execution_ids: list[uuid.UUID]) -> int:
    return Operation.objects.filter(execution_id__in=execution_ids).count()


def count_events(execution_ids: list[uuid.UUID]) -> int:
    """The history events of these executions: a row that holds its operation's start as well
    as its end (`HistoryEvent.started_at`) is two."""
    counted = HistoryEvent.objects.filter(execution_id__in=execution_ids).aggregate(
        rows=Count("pk"), starts=Count("started_at")
    )
    return int(counted["rows"]) + int(counted["starts"])


def delete_executions(execution_ids: list[uuid.UUID], cutoff: datetime) -> Deleted:
    """In one transaction, delete those of these executions still ended before `cutoff`, with
    their operations and history; executions they invoked, and invokes that started them, lose
    the link. Returns what was deleted."""
    if not execution_ids:
        return Deleted()
    with transaction.atomic():
        ids = list(
            Execution.objects.select_for_update()
            .filter(pk__in=execution_ids, status__in=ENDED, ended_at__lt=cutoff)
            .values_list("pk", flat=True)
        )
        if not ids:
            return Deleted()
        statements = _statements(len(ids))
        pk = Execution._meta.pk
        assert pk is not None
        params: list[Any] = [pk.get_db_prep_value(value, connection) for value in ids]
        count_starts, *writes = statements
        counts = []
        with connection.cursor() as cursor:
            cursor.execute(count_starts, params)
            held_starts = int(cursor.fetchone()[0])
            for statement in writes:
                cursor.execute(statement, params)
                counts.append(cursor.rowcount)
    rows, operations, _, _, executions = counts
    return Deleted(executions=executions, operations=operations, events=rows + held_starts)


@cache
def _statements_for(vendor: str, count: int) -> tuple[str, ...]:
    qn = connection.ops.quote_name
    marks = ", ".join(["%s"] * count)
    execution, operation = qn(Execution._meta.db_table), qn(Operation._meta.db_table)
    event = qn(HistoryEvent._meta.db_table)

    def column(model: Any, field: str) -> str:
        return str(qn(model._meta.get_field(field).column))

    return (
        # The starts the history rows hold beside their ends (two events in one row).
        f"SELECT COUNT({column(HistoryEvent, 'started_at')}) FROM {event} "
        f"WHERE {column(HistoryEvent, 'execution')} IN ({marks})",
        f"DELETE FROM {event} WHERE {column(HistoryEvent, 'execution')} IN ({marks})",
        f"DELETE FROM {operation} WHERE {column(Operation, 'execution')} IN ({marks})",
        # The models' SET_NULL: an invoked child outlives its purged parent, and the reverse.
        f"UPDATE {execution} SET {column(Execution, 'parent_execution')} = NULL "
        f"WHERE {column(Execution, 'parent_execution')} IN ({marks})",
        f"UPDATE {operation} SET {column(Operation, 'child_execution')} = NULL "
        f"WHERE {column(Operation, 'child_execution')} IN ({marks})",
        f"DELETE FROM {execution} WHERE {column(Execution, 'id')} IN ({marks})",
    )


def _statements(count: int) -> tuple[str, ...]:
    return _statements_for(connection.vendor, count)
