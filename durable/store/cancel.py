"""Cancelling a race's losing callbacks: only those still pending when the write commits.

A callback's sender told "accepted" is never overruled (whoever commits first wins): the
cancellation is a conditional update inside the invocation's fenced transaction, and a
callback completed meanwhile keeps its completion (the race is over either way).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction

from durable import events
from durable.models import Operation
from durable.state import OperationStatus, OperationType
from durable.store import sql

if TYPE_CHECKING:
    from durable.store.leased import LeasedJournal


def cancel_callbacks(journal: LeasedJournal, operation_ids: list[str], reason: str, now: datetime) -> list[str]:
    """Cancel those of these callbacks still STARTED, fenced by the lease; returns their ids.
    Raises LeaseLostError (nothing is written)."""
    if not operation_ids:
        return []
    with transaction.atomic():
        journal.store.write(journal, [], [], {}, None)  # the fence alone
        pending = Operation.objects.select_for_update().filter(
            execution_id=journal.execution_id,
            operation_id__in=operation_ids,
            type=OperationType.CALLBACK,
            status=OperationStatus.STARTED,
        )
        rows = list(pending.values_list(*sql.OPERATION_FIELDS))
        if not rows:
            return []
        cancelled = [sql.record(row) for row in rows]
        Operation.objects.filter(
            execution_id=journal.execution_id, operation_id__in=[r.operation_id for r in cancelled]
        ).update(status=OperationStatus.CANCELLED, ended_at=now)
        history = []
        for record in cancelled:
            event = events.operation_cancelled(OperationType.CALLBACK.value, reason)
            event.operation, event.timestamp = record, now
            history.append(event)
        journal.store.append_events(journal.execution_id, history)
    return [r.operation_id for r in cancelled]
