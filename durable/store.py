"""The journal store: every database read and write of the engine's hot path lives here.

Writes made under a lease are fenced: the same transaction first updates the execution row
only if it still carries this invocation's lease token and is RUNNING. A worker that lost its
lease (or whose execution was stopped) writes nothing and gets LeaseLostError.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q

from durable.exceptions import LeaseLostError
from durable.models import Execution, ExecutionStatus, HistoryEvent, Operation
from durable.state import (
    Checkpoint,
    HistoryRecord,
    OperationRecord,
    OperationStatus,
    OperationType,
)

_OPERATION_FIELDS = (
    "operation_id",
    "parent_id",
    "type",
    "sub_type",
    "name",
    "status",
    "attempt",
    "result",
    "error",
    "next_attempt_at",
    "wait_until",
    "callback_id",
    "callback_deadline",
    "heartbeat_deadline",
    "started_at",
    "ended_at",
)
_UPDATABLE_FIELDS = [f for f in _OPERATION_FIELDS if f not in ("operation_id", "parent_id", "type", "sub_type", "name")]


def acquire_lease(execution_id: str, owner: str, now: datetime, ttl_seconds: float) -> Execution | None:
    """Take the lease of a RUNNING execution if it is free or expired; None if not taken."""
    token = secrets.token_hex(16)
    taken = (
        Execution.objects.filter(pk=execution_id, status=ExecutionStatus.RUNNING)
        .filter(Q(lease_token__isnull=True) | Q(lease_expires_at__lt=now))
        .update(
            lease_token=token,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=ttl_seconds),
            invocation_count=F("invocation_count") + 1,
            updated_at=now,
        )
    )
    if not taken:
        return None
    return Execution.objects.get(pk=execution_id)


def load_journal(execution_id: str) -> dict[str, OperationRecord]:
    """The whole journal of an execution, in order, in one query."""
    rows = Operation.objects.filter(execution_id=execution_id).order_by("id").values_list(*_OPERATION_FIELDS)
    journal: dict[str, OperationRecord] = {}
    for row in rows:
        values = dict(zip(_OPERATION_FIELDS, row, strict=True))
        values["type"] = OperationType(values["type"])
        values["status"] = OperationStatus(values["status"])
        journal[values["operation_id"]] = OperationRecord(**values)
    return journal


def save_checkpoints(execution_id: str, checkpoints: Iterable[Checkpoint]) -> None:
    """Upsert the operations (last state wins) and append their events; call inside a transaction."""
    latest: dict[str, OperationRecord] = {}
    events: list[HistoryEvent] = []
    for checkpoint in checkpoints:
        latest[checkpoint.record.operation_id] = checkpoint.record
        events.extend(_event_row(execution_id, event) for event in checkpoint.events)
    if latest:
        Operation.objects.bulk_create(
            [
                Operation(execution_id=execution_id, **{f: getattr(r, f) for f in _OPERATION_FIELDS})
                for r in latest.values()
            ],
            update_conflicts=True,
            unique_fields=["execution", "operation_id"],
            update_fields=_UPDATABLE_FIELDS,
        )
    if events:
        HistoryEvent.objects.bulk_create(events)


def append_events(execution_id: str, events: Iterable[HistoryRecord]) -> None:
    HistoryEvent.objects.bulk_create([_event_row(execution_id, e) for e in events])


def _event_row(execution_id: str, event: HistoryRecord) -> HistoryEvent:
    op = event.operation
    assert event.timestamp is not None
    return HistoryEvent(
        execution_id=execution_id,
        event_type=event.event_type,
        operation_id=op.operation_id if op else None,
        parent_id=op.parent_id if op else None,
        name=op.name if op else None,
        sub_type=op.sub_type if op else None,
        timestamp=event.timestamp,
        details=event.details,
    )


class LeasedJournal:
    """The JournalWriter of one invocation: writes fenced by its lease token."""

    def __init__(self, execution_id: str, token: str, clock: Any) -> None:
        self.execution_id = execution_id
        self.token = token
        self.clock = clock

    def _fence(self, **changes: Any) -> None:
        kept = Execution.objects.filter(
            pk=self.execution_id, lease_token=self.token, status=ExecutionStatus.RUNNING
        ).update(updated_at=self.clock(), **changes)
        if not kept:
            raise LeaseLostError(f"lost the lease of execution {self.execution_id}")

    def write(self, checkpoints: list[Checkpoint]) -> None:
        with transaction.atomic():
            self._fence()
            save_checkpoints(self.execution_id, checkpoints)

    def transaction(self) -> AbstractContextManager[Any]:
        return transaction.atomic()

    def finish(self, checkpoints: list[Checkpoint], events: list[HistoryRecord], **changes: Any) -> None:
        """End the invocation: last checkpoints, the execution's new state, lease released."""
        with transaction.atomic():
            self._fence(lease_token=None, lease_owner=None, lease_expires_at=None, **changes)
            save_checkpoints(self.execution_id, checkpoints)
            append_events(self.execution_id, events)
