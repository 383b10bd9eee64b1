"""The journal writer of one invocation: every write it makes is fenced by its lease token.

The same transaction first updates the execution row only if it still carries this
invocation's lease token and is RUNNING; a worker that lost its lease (or whose execution was
stopped) writes nothing and gets LeaseLostError. Besides checkpoints it starts invoked children
and cancels a race's losing callbacks (durable.store.children, durable.store.cancel).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction

from durable.exceptions import CheckpointFailedError, CheckpointRefusedError, LeaseLostError
from durable.models import Execution, ExecutionStatus, Operation
from durable.outbox import OPERATION_END_STATUSES, OutboxRecord, operation_change
from durable.state import Checkpoint, ChildStart, HistoryRecord, OperationRecord, OperationStatus
from durable.store import outbox as outbox_store
from durable.store import sql

if TYPE_CHECKING:
    from durable.store.base import NextLease, SqlJournalStore

log = logging.getLogger("durable.store")

# What an invocation's last transaction sets besides its outcome: the lease let go, counters reset.
_RELEASED: dict[str, Any] = {
    "lease_token": None,
    "lease_owner": None,
    "lease_expires_at": None,
    "consecutive_deaths": 0,
    "died_at_operation": None,
    "deaths_at_operation": 0,
    "failed_invocations": 0,
}


@contextmanager
def checkpoint_guard(execution_id: str) -> Iterator[None]:
    """Turn a failed journal write into CheckpointFailedError (the database could not be
    reached: a later invocation may succeed) or CheckpointRefusedError (it refused the values:
    every retry would fail the same way)."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        if connection.in_atomic_block and not connection.get_autocommit():
            raise  # inside a caller's transaction (a transactional step): theirs to handle
        raise CheckpointFailedError(f"could not write the journal of execution {execution_id}: {exc}") from exc
    except (DatabaseError, UnicodeError, ValueError, TypeError) as exc:
        if connection.in_atomic_block and not connection.get_autocommit():
            raise
        raise CheckpointRefusedError(
            f"the database refused a journal write of execution {execution_id}: {type(exc).__name__}: {exc}"
        ) from exc


@cache
def _fields(columns: tuple[str, ...]) -> list[Any]:
    return [Execution._meta.get_field(name) for name in columns]


class LeasedJournal:
    """The JournalWriter of one invocation: writes fenced by its lease token."""

    def __init__(self, store: SqlJournalStore, execution_id: str, token: str, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.execution_id = execution_id
        self.token = token
        self.clock = clock
        self.pk = sql.execution_pk(execution_id)
        self.started_children: list[str] = []
        # Set by an invocation whose function sends operation events: (function, execution name).
        self.operation_events: tuple[str, str] | None = None

    def operation_ended(self, records: list[OperationRecord], now: datetime) -> list[OutboxRecord]:
        """An event for each of these completed operations, if this function sends them."""
        if self.operation_events is None:
            return []
        function_name, execution_name = self.operation_events
        return [
            operation_change(
                execution_id=self.execution_id,
                function_name=function_name,
                execution_name=execution_name,
                operation=record,
                at=record.ended_at or now,
            )
            for record in records
        ]

    def with_operation_events(
        self, checkpoints: list[Checkpoint], outbox: Sequence[OutboxRecord]
    ) -> list[OutboxRecord]:
        """`outbox`, after an event for each operation these checkpoints complete (if asked for)."""
        if self.operation_events is None:
            return list(outbox)
        ended = {c.record.operation_id: c.record for c in checkpoints if c.record.status in OPERATION_END_STATUSES}
        return [*self.operation_ended(list(ended.values()), self.clock()), *outbox]

    def fence(self, changes: dict[str, Any]) -> tuple[str, list[Any]]:
        """The fence with `changes` to the execution row, and its parameters."""
        columns = tuple(changes)
        params = [sql.db_value(field, changes[name]) for name, field in zip(columns, _fields(columns), strict=True)]
        now = connection.ops.adapt_datetimefield_value(self.clock())
        return sql.statements().fence(columns), [now, *params, self.pk, self.token, ExecutionStatus.RUNNING.value]

    def write(self, checkpoints: list[Checkpoint]) -> None:
        """Persist the checkpoints in one transaction, fenced by the lease; raises LeaseLostError."""
        self.store.write(self, checkpoints, [], {}, None)

    def transaction(self) -> AbstractContextManager[Any]:
        return transaction.atomic()

    def reload(self, operation_id: str) -> OperationRecord | None:
        return self.store.load_operation(self.execution_id, operation_id)

    def time_out(self, record: OperationRecord, events: list[HistoryRecord], now: datetime) -> bool:
        """The fence, then the callback's time-out only if it is still pending and past a
        deadline, then its events; False if a completion or heartbeat committed first."""
        with checkpoint_guard(self.execution_id):
            ops = connection.ops
            fence_sql, fence_params = self.fence({})
            at = ops.adapt_datetimefield_value(now)
            error = sql.adapt_json(record.error)
            params = [record.status.value, error, ops.adapt_datetimefield_value(record.ended_at)]
            params += [self.pk, record.operation_id, OperationStatus.STARTED.value, at, at]
            event_rows = sql.event_rows(self.pk, events)
            statements = sql.statements()
            with transaction.atomic(), sql.cursor() as cursor:
                cursor.execute(fence_sql, fence_params)
                if not cursor.rowcount:
                    raise LeaseLostError(f"lost the lease of execution {self.execution_id}")
                cursor.execute(statements.time_out_callback, params)
                if not cursor.rowcount:
                    return False
                cursor.executemany(statements.insert_events(1), event_rows)
                outbox_store.write(self.operation_ended([record], now))
        return True

    def finish(
        self,
        checkpoints: list[Checkpoint],
        events: list[HistoryRecord],
        *,
        watched_callbacks: list[str] | None = None,
        outbox: Sequence[OutboxRecord] = (),
        next_lease: Callable[[], NextLease | None] | None = None,
        **changes: Any,
    ) -> bool:
        """End the invocation: last checkpoints, the execution's new state (and its `outbox`
        event, if it ended), lease released.

        `watched_callbacks` are the callbacks this invocation suspended on. One completed
        meanwhile makes the execution due now, so its completion is never lost. Returns True if so.

        `next_lease`, called as the write's transaction is about to begin, gives the lease of the
        execution this process runs next, taken in the same transaction (SqlJournalStore.next_lease).
        A write that fails with it is written again without it: the next lease never costs this end.
        """
        changes = {**_RELEASED, **changes}
        if next_lease is not None:
            try:
                return self.store.write(self, checkpoints, events, changes, watched_callbacks, outbox, next_lease)
            except (CheckpointFailedError, CheckpointRefusedError) as exc:
                log.warning(
                    "the end of %s failed with the next lease in it, written again without: %s", self.execution_id, exc
                )
        return self.store.write(self, checkpoints, events, changes, watched_callbacks, outbox)

    def write_in_transaction(
        self,
        checkpoints: list[Checkpoint],
        events: list[HistoryRecord],
        changes: dict[str, Any],
        watched_callbacks: list[str] | None,
        outbox: Sequence[OutboxRecord] = (),
        next_lease: Callable[[], NextLease | None] | None = None,
    ) -> bool:
        """The fence, the operations (the last state of each), the events, `changes` and the
        outbox's events in one transaction; the fence failing rolls it back. Returns whether a
        watched callback completed meanwhile (see `finish`). Then the next lease, if asked for
        and this transaction is the outermost (it commits here)."""
        woke = False
        with checkpoint_guard(self.execution_id):
            fence_sql, fence_params = self.fence(changes)
            operations, event_rows = sql.checkpoint_rows(self.pk, checkpoints)
            event_rows += sql.event_rows(self.pk, events)
            statements = sql.statements()
            outbox_rows = outbox_store.Prepared(self.with_operation_events(checkpoints, outbox))
            taking = next_lease() if next_lease is not None and not connection.in_atomic_block else None
            taken = None
            with transaction.atomic(), sql.cursor() as fence, sql.cursor() as cursor:
                with self.store.pipelined():
                    fence.execute(fence_sql, fence_params)
                    if operations:
                        cursor.executemany(statements.upsert_operations(1), operations)
                    if event_rows:
                        cursor.executemany(statements.insert_events(1), event_rows)
                # What was sent after the fence is in this transaction, which this rolls back.
                if not fence.rowcount:
                    raise LeaseLostError(f"lost the lease of execution {self.execution_id}")
                outbox_rows.write()
                if watched_callbacks and (
                    Operation.objects.filter(execution_id=self.execution_id, operation_id__in=watched_callbacks)
                    .exclude(status=OperationStatus.STARTED)
                    .exists()
                ):
                    Execution.objects.filter(pk=self.execution_id).update(wake_at=self.clock())
                    woke = True
                if taking is not None and statements.returning_execution is not None:
                    cursor.execute(statements.returning_execution, taking.params)
                    taken = cursor.fetchone()
        if taking is not None:
            self.store.handed_over(taking, taken)
        return woke

    def function_error(self, function_name: str) -> dict[str, Any] | None:
        from durable.store import children

        return children.function_error(function_name)

    def start_child(self, checkpoints: list[Checkpoint], child: ChildStart) -> None:
        from durable.store import children

        with checkpoint_guard(self.execution_id):
            self.started_children.append(children.start_child(self, checkpoints, child))

    def cancel_callbacks(self, operation_ids: list[str], reason: str, now: datetime) -> list[str]:
        from durable.store import cancel

        with checkpoint_guard(self.execution_id):
            return cancel.cancel_callbacks(self, operation_ids, reason, now)
