"""The journal store's interface, and what SQLite and PostgreSQL do alike.

Writes made under a lease are fenced: the same transaction first updates the execution row
only if it still carries this invocation's lease token and is RUNNING. A worker that lost its
lease (or whose execution was stopped) writes nothing and gets LeaseLostError. Writes made
outside a lease (a stop, a redrive, the sweep, a callback's completion) are conditional on the
row's state instead: whoever commits first wins, and the loser writes nothing.

Statements are built before a write's transaction begins, so the database's locks (on SQLite,
its single writer lock) are held only while they run.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet

from durable.events import callback_completed
from durable.exceptions import (
    CallbackAlreadyCompletedError,
    CallbackExpiredError,
    CallbackNotFoundError,
    DatabaseUnreachableError,
    LeaseLostError,
)
from durable.models import OPEN_STATUSES, RUNNING_ONLY, Execution, ExecutionStatus, Operation
from durable.outbox import OutboxRecord
from durable.state import Checkpoint, HistoryRecord, OperationRecord, OperationStatus, OperationType
from durable.store import outbox as outbox_store
from durable.store import sql

if TYPE_CHECKING:
    from durable.store.leased import LeasedJournal


@dataclass(frozen=True)
class Lease:
    execution: Execution
    token: str
    took_over: bool  # the previous holder never released it: that invocation died
    # The journal, where the database read it in the lease's own round trip (PostgreSQL); None
    # where the invocation loads it next (load_journal).
    journal: dict[str, OperationRecord] | None = None


@dataclass(frozen=True)
class NextLease:
    """The lease of the execution a worker runs next, to be taken in the transaction of its
    running invocation's last write (see `SqlJournalStore.next_lease`)."""

    execution_id: str
    token: str
    params: list[Any]  # the lease's UPDATE's, as `acquire_lease` makes them

    @property
    def pk(self) -> Any:
        return self.params[4]


@dataclass(frozen=True)
class CallbackOutcome:
    """What a callback's completion (or heartbeat) wrote: its execution, the operation as it is
    now, and the time read once the execution's row was held (the completion's `ended_at`)."""

    execution_id: str
    operation: OperationRecord
    at: datetime


log = logging.getLogger("durable.store")


class JournalStore(Protocol):
    """Every read and write of the journal the engine makes."""

    # Leases.
    def acquire_lease(self, execution_id: str, owner: str, now: datetime, ttl_seconds: float) -> Lease | None: ...
    def renew_lease(self, execution_id: str, token: str, now: datetime, ttl_seconds: float) -> bool: ...
    def expire_lease(self, execution_id: str, token: str, now: datetime) -> bool: ...
    def record_death(self, execution_id: str, token: str, operation_id: str, count: int, now: datetime) -> None: ...
    def leased(self, execution_id: str, token: str, clock: Callable[[], datetime]) -> LeasedJournal: ...

    # The journal.
    def load_journal(self, execution_id: str, *, first_invocation: bool = False) -> dict[str, OperationRecord]: ...
    def load_operation(self, execution_id: str, operation_id: str) -> OperationRecord | None: ...
    def append_events(self, execution_id: str, events: Iterable[HistoryRecord]) -> None: ...

    # Executions, outside any lease.
    def insert_execution(
        self, values: dict[str, Any], events: Iterable[HistoryRecord], outbox: Sequence[OutboxRecord] = ()
    ) -> Execution: ...
    def stop_execution(
        self,
        execution_id: str,
        now: datetime,
        error: dict[str, Any] | None,
        events: list[HistoryRecord],
        outbox: Sequence[OutboxRecord] = (),
    ) -> bool: ...
    def wake_execution(self, execution_id: str, now: datetime, events: list[HistoryRecord]) -> bool: ...
    def reopen_execution(
        self,
        execution_id: str,
        now: datetime,
        timeout_at: datetime,
        clear: list[str],
        reopen: list[str],
        events: list[HistoryRecord],
        outbox: Sequence[OutboxRecord] = (),
    ) -> bool: ...
    def complete_callback(
        self,
        callback_id: str,
        now: Callable[[], datetime],
        *,
        status: OperationStatus,
        result: str | None = None,
        error: dict[str, Any] | None = None,
        heartbeat: bool = False,
    ) -> CallbackOutcome: ...

    # The sweep.
    def due(self, now: datetime, limit: int) -> list[tuple[Any, datetime | None]]: ...
    def expired_leases(self, now: datetime, limit: int) -> list[Any]: ...
    def with_expired_callbacks(self, execution_ids: list[Any], now: datetime) -> set[Any]: ...
    def time_out_executions(
        self,
        now: datetime,
        limit: int,
        error: dict[str, Any],
        events: Callable[[], list[HistoryRecord]],
        then: Callable[[list[str]], None] | None = None,
        outbox: Callable[[str, str, str, datetime], list[OutboxRecord]] | None = None,
    ) -> list[tuple[str, str, str]]: ...
    def time_out_callbacks(
        self,
        execution_id: str,
        now: datetime,
        error_for: Callable[[OperationRecord], dict[str, Any] | None],
        event_for: Callable[[OperationRecord, dict[str, Any]], HistoryRecord],
    ) -> int: ...


def _lease_free(now: datetime) -> Q:
    return Q(lease_token__isnull=True) | Q(lease_expires_at__lt=now)


def _running() -> QuerySet[Execution]:
    return Execution.objects.filter(status=ExecutionStatus.RUNNING)


def due_query(now: datetime) -> QuerySet[Execution]:
    """Executions whose wake-up has come and whose lease is free (index durable_exec_due)."""
    return _running().filter(wake_at__lte=now).filter(_lease_free(now))


def timed_out_query(now: datetime) -> QuerySet[Execution]:
    """Executions past their timeout whose lease is free (index durable_exec_timeout, whose
    condition the query repeats)."""
    return Execution.objects.filter(status__literal_in=RUNNING_ONLY, timeout_at__lte=now).filter(_lease_free(now))


def expired_leases_query(now: datetime) -> QuerySet[Execution]:
    """Executions whose invocation died: its lease lapsed without being let go (durable_exec_lease)."""
    return _running().filter(lease_expires_at__lt=now, lease_token__isnull=False)


def _expired_callbacks(now: datetime) -> QuerySet[Operation]:
    """Callbacks past a deadline (index durable_op_open, whose condition the query repeats)."""
    pending = Operation.objects.filter(status__literal_in=OPEN_STATUSES)
    return pending.filter(type=OperationType.CALLBACK, status=OperationStatus.STARTED).filter(
        Q(callback_deadline__lte=now) | Q(heartbeat_deadline__lte=now)
    )


def ended(status: str, now: datetime, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The columns of an execution that ends outside an invocation (stop, sweep): lease let go."""
    return {
        "status": status,
        "error": error,
        "ended_at": now,
        "updated_at": now,
        "wake_at": None,
        "lease_token": None,
        "lease_owner": None,
        "lease_expires_at": None,
    }


class SqlJournalStore:
    """The journal store on a Django database; a dialect overrides what its database does better."""

    # Connections.

    def renew_connection(self) -> None:
        """Replace the default connection's session with a new one (a worker does it while it
        waits for work, durable.rq.jobs.renew_aging_connections); a dialect warms the new one so
        that the next invocation costs no more on it than on the old."""
        connection.close()
        connection.ensure_connection()

    # Leases.

    # A lease taken ahead for this process's next invocation (next_lease): the execution's id,
    # the lease, and when it was taken (time.monotonic()).
    _handed: tuple[str, Lease, float] | None = None

    def acquire_lease(self, execution_id: str, owner: str, now: datetime, ttl_seconds: float) -> Lease | None:
        """Take the lease of a RUNNING execution if it is free or expired; None if not taken.
        A lease this process took ahead for this execution (next_lease) is used instead.

        Raises DatabaseUnreachableError if the database does not answer (nothing else has run).
        """
        handed = self._take_handed_lease(execution_id, ttl_seconds)
        if handed is not None:
            return handed
        token, params = self._lease_params(execution_id, owner, now, ttl_seconds)
        try:
            taken = self._take_lease(execution_id, params)
        except (OperationalError, InterfaceError) as exc:
            raise DatabaseUnreachableError(" ".join(str(exc).split())) from exc
        if taken is None:
            return None
        execution, journal = taken
        return Lease(execution, token, took_over=execution.consecutive_deaths > 0, journal=journal)

    def _lease_params(self, execution_id: str, owner: str, now: datetime, ttl_seconds: float) -> tuple[str, list[Any]]:
        """A new token, and the lease's UPDATE's parameters with it."""
        token = secrets.token_hex(16)
        ops = connection.ops
        params = [
            token,
            owner,
            ops.adapt_datetimefield_value(now + timedelta(seconds=ttl_seconds)),
            ops.adapt_datetimefield_value(now),
            sql.execution_pk(execution_id),
            ExecutionStatus.RUNNING.value,
            ops.adapt_datetimefield_value(now),
        ]
        return token, params

    # Leases handed over: a worker knows the job it runs next before its running invocation's
    # last write (durable.rq.worker sends for it then), so that write takes the next execution's
    # lease in its own transaction (one transaction, one round trip, less per invocation) and
    # keeps it here for the next acquire_lease. The lease's UPDATE is the one acquire_lease
    # runs, with the same test (RUNNING, free or expired) and the same count of a dead holder.

    def next_lease(self, execution_id: str | None, owner: str, now: datetime, ttl_seconds: float) -> NextLease | None:
        """The lease of `execution_id` for the last write of the running invocation to take; None
        if there is none to take, or the database cannot read the row back in the UPDATE."""
        if execution_id is None or sql.statements().returning_execution is None:
            return None
        token, params = self._lease_params(execution_id, owner, now, ttl_seconds)
        return NextLease(execution_id, token, params)

    def handed_over(
        self, lease: NextLease, row: tuple[Any, ...] | None, journal: dict[str, OperationRecord] | None = None
    ) -> None:
        """After the commit of the write that carried `lease`: keep it for the next acquire_lease,
        if taken (`row`: the execution's, read back by the UPDATE)."""
        self.let_go_handed_lease()
        if row is not None:
            execution = sql.statements().execution_from_row(row)
            taken = Lease(execution, lease.token, took_over=execution.consecutive_deaths > 0, journal=journal)
            self._handed = (lease.execution_id, taken, time.monotonic())

    def _take_handed_lease(self, execution_id: str, ttl_seconds: float) -> Lease | None:
        handed, self._handed = self._handed, None
        if handed is None:
            return None
        handed_id, lease, taken_at = handed
        if handed_id == execution_id and time.monotonic() - taken_at < ttl_seconds / 2:
            return lease
        self._let_go(handed_id, lease.token)
        return None

    def let_go_handed_lease(self) -> None:
        """Let go of a lease taken ahead that no invocation will use (the worker is stopping, or
        put the job back), as if never taken: the execution is free at once, not after the lease
        ran out and counted as a dead invocation."""
        handed, self._handed = self._handed, None
        if handed is not None:
            self._let_go(handed[0], handed[1].token)

    def _let_go(self, execution_id: str, token: str) -> None:
        try:
            Execution.objects.filter(pk=execution_id, lease_token=token).update(
                lease_token=None,
                lease_owner=None,
                lease_expires_at=None,
                invocation_count=F("invocation_count") - 1,
            )
        except DatabaseError as exc:
            log.warning("could not let go of the lease of execution %s (it runs out instead): %s", execution_id, exc)

    def _lease_transaction(self) -> AbstractContextManager[Any]:
        """What the lease's UPDATE runs in (SQLite: a transaction of its own)."""
        return _no_transaction()

    def _take_lease(
        self, execution_id: str, params: list[Any]
    ) -> tuple[Execution, dict[str, OperationRecord] | None] | None:
        """The lease's UPDATE (`acquire`'s parameters, the new token first): the execution's row
        if taken, and its journal where the dialect reads it in the same round trip."""
        statements = sql.statements()
        with self._lease_transaction(), sql.cursor() as cursor:
            # Raw SQL: this runs once per invocation, and the ORM's statement building cost more
            # than the database's work. RETURNING reads the execution in the same statement.
            if statements.returning_execution:
                cursor.execute(statements.returning_execution, params)
                row = cursor.fetchone()
            else:
                cursor.execute(statements.acquire, params)
                if not cursor.rowcount:
                    return None
                row = None
        if not statements.returning_execution:
            return Execution.objects.get(pk=execution_id), None
        # Converted once the transaction is over (on SQLite, the writers' lock let go).
        return (statements.execution_from_row(row), None) if row is not None else None

    def renew_lease(self, execution_id: str, token: str, now: datetime, ttl_seconds: float) -> bool:
        """Extend a lease still held; False if it was lost."""
        return bool(
            _running()
            .filter(pk=execution_id, lease_token=token)
            .update(lease_expires_at=now + timedelta(seconds=ttl_seconds))
        )

    def expire_lease(self, execution_id: str, token: str, now: datetime) -> bool:
        """End a lease at once without releasing it, so the next holder counts this one as dead."""
        return bool(
            Execution.objects.filter(pk=execution_id, lease_token=token).update(lease_expires_at=now, wake_at=now)
        )

    def record_death(self, execution_id: str, token: str, operation_id: str, count: int, now: datetime) -> None:
        """Note that invocations died `count` times in a row at `operation_id` (fenced)."""
        kept = (
            _running()
            .filter(pk=execution_id, lease_token=token)
            .update(died_at_operation=operation_id, deaths_at_operation=count, updated_at=now)
        )
        if not kept:
            raise LeaseLostError(f"lost the lease of execution {execution_id}")

    def leased(self, execution_id: str, token: str, clock: Callable[[], datetime]) -> LeasedJournal:
        from durable.store.leased import LeasedJournal

        return LeasedJournal(self, execution_id, token, clock)

    def write(
        self,
        journal: LeasedJournal,
        checkpoints: list[Checkpoint],
        events: list[HistoryRecord],
        changes: dict[str, Any],
        watched_callbacks: list[str] | None,
        outbox: Sequence[OutboxRecord] = (),
        next_lease: Callable[[], NextLease | None] | None = None,
    ) -> bool:
        """A write under `journal`'s lease (see LeasedJournal.write_in_transaction)."""
        return journal.write_in_transaction(checkpoints, events, changes, watched_callbacks, outbox, next_lease)

    def pipelined(self) -> AbstractContextManager[Any]:
        """What a write's statements are sent in (PostgreSQL: without waiting for each reply)."""
        return _no_transaction()

    # The journal.

    def load_journal(self, execution_id: str, *, first_invocation: bool = False) -> dict[str, OperationRecord]:
        """The whole journal of an execution, in order, in one query.

        `first_invocation`: the caller's lease was the execution's first (invocation_count 1), so
        nothing was ever written under a lease and the journal is empty: no query.
        """
        if first_invocation:
            return {}
        with sql.cursor() as cursor:
            cursor.execute(sql.statements().load_journal, [sql.execution_pk(execution_id)])
            rows = cursor.fetchall()
        return sql.records(rows)

    def load_operation(self, execution_id: str, operation_id: str) -> OperationRecord | None:
        row = (
            Operation.objects.filter(execution_id=execution_id, operation_id=operation_id)
            .values_list(*sql.OPERATION_FIELDS)
            .first()
        )
        return sql.record(row) if row else None

    def append_events(self, execution_id: str, events: Iterable[HistoryRecord]) -> None:
        rows = sql.event_rows(sql.execution_pk(execution_id), events)
        with sql.cursor() as cursor:
            cursor.executemany(sql.statements().insert_events(1), rows)

    # Executions, outside any lease.

    def insert_execution(
        self, values: dict[str, Any], events: Iterable[HistoryRecord], outbox: Sequence[OutboxRecord] = ()
    ) -> Execution:
        """Insert a new execution row (`values` by field name), its first events and its start's
        outbox event, in one transaction, with raw SQL: the ORM's insert machinery cost more than the database's
        work, on the path that starts every execution."""
        statements = sql.statements()
        params = sql.execution_params(values)
        pk = sql.execution_pk(str(values["id"]))
        event_rows = sql.event_rows(pk, events)
        outbox_rows = outbox_store.Prepared(outbox)
        with transaction.atomic(), sql.cursor() as cursor:
            cursor.execute(statements.insert_execution, params)
            cursor.executemany(statements.insert_events(1), event_rows)
            outbox_rows.write()
        return statements.execution_from_values(values)

    def stop_execution(
        self,
        execution_id: str,
        now: datetime,
        error: dict[str, Any] | None,
        events: list[HistoryRecord],
        outbox: Sequence[OutboxRecord] = (),
    ) -> bool:
        """End a RUNNING execution as STOPPED (a running invocation's next write is refused)."""
        with transaction.atomic():
            if not _running().filter(pk=execution_id).update(**ended(ExecutionStatus.STOPPED, now, error)):
                return False
            self.append_events(execution_id, events)
            outbox_store.write(outbox)
        return True

    def wake_execution(self, execution_id: str, now: datetime, events: list[HistoryRecord]) -> bool:
        """Make a RUNNING execution due now."""
        with transaction.atomic():
            if not _running().filter(pk=execution_id).update(wake_at=now, updated_at=now):
                return False
            self.append_events(execution_id, events)
        return True

    def reopen_execution(
        self,
        execution_id: str,
        now: datetime,
        timeout_at: datetime,
        clear: list[str],
        reopen: list[str],
        events: list[HistoryRecord],
        outbox: Sequence[OutboxRecord] = (),
    ) -> bool:
        """A FAILED execution RUNNING again: the `clear` operations deleted (they run again), the
        `reopen` child contexts STARTED again (their completed operations kept)."""
        with transaction.atomic():
            reopened = Execution.objects.filter(pk=execution_id, status=ExecutionStatus.FAILED).update(
                status=ExecutionStatus.RUNNING,
                error=None,
                result=None,
                ended_at=None,
                updated_at=now,
                wake_at=now,
                timeout_at=timeout_at,
                failed_operations=None,
                failed_invocations=0,
            )
            if not reopened:
                return False
            journal = Operation.objects.filter(execution_id=execution_id)
            journal.filter(operation_id__in=clear).delete()
            journal.filter(operation_id__in=reopen).update(status=OperationStatus.STARTED, error=None, ended_at=None)
            self.append_events(execution_id, events)
            outbox_store.write(outbox)
        return True

    def complete_callback(
        self,
        callback_id: str,
        now: Callable[[], datetime],
        *,
        status: OperationStatus,
        result: str | None = None,
        error: dict[str, Any] | None = None,
        heartbeat: bool = False,
    ) -> CallbackOutcome:
        """Complete (or, with `heartbeat`, extend) a pending callback and make its execution due.

        Whoever commits first wins: the time is read (`now()`) once this holds the execution's
        row, so a time-out that committed first makes this CallbackExpiredError, and one that
        comes after finds the callback completed (or its heartbeat deadline moved) and writes
        nothing. Raises CallbackNotFoundError, CallbackAlreadyCompletedError,
        CallbackExpiredError; in each case nothing is written.

        Raw SQL from `sql.Statements`, in two batches (on PostgreSQL each one round trip): the
        execution's row held and the operation read, then the writes.
        """
        statements = sql.statements()
        ops = connection.ops
        with transaction.atomic(), sql.cursor() as hold, sql.cursor() as read:
            # Lock order: the execution's row first, as invocations do, then the operation, read
            # by a statement that runs once the row is held (and sees what committed before).
            with self.pipelined():
                hold.execute(
                    statements.hold_callback_execution,
                    [ops.adapt_datetimefield_value(now()), callback_id, ExecutionStatus.RUNNING.value],
                )
                read.execute(statements.read_callback, [callback_id])
            running = hold.fetchone()
            row = read.fetchone()
            at = now()
            if row is None:
                raise CallbackNotFoundError(f"no callback with id {callback_id!r}")
            pk, record = row[0], next(iter(sql.records([row[1:]]).values()))
            if record.status == OperationStatus.TIMED_OUT:
                raise CallbackExpiredError(f"callback {callback_id!r} timed out before this arrived")
            if record.status != OperationStatus.STARTED:
                raise CallbackAlreadyCompletedError(
                    f"callback {callback_id!r} was already completed ({record.status.value})"
                )
            if running is None:
                raise CallbackNotFoundError(f"callback {callback_id!r} belongs to an execution that has ended")
            for deadline in (record.callback_deadline, record.heartbeat_deadline):
                if deadline is not None and at >= deadline:
                    raise CallbackExpiredError(f"callback {callback_id!r} expired at {deadline.isoformat()}")
            execution_pk, names = running[0], (running[1], running[2])
            execution_id = str(sql.execution_uuid(execution_pk))
            if heartbeat:
                if record.heartbeat_seconds:
                    extended = at + timedelta(seconds=record.heartbeat_seconds)
                    hold.execute(statements.extend_callback, [ops.adapt_datetimefield_value(extended), pk])
                    record = replace(record, heartbeat_deadline=extended)
                return CallbackOutcome(execution_id, record, at)
            moment = ops.adapt_datetimefield_value(at)
            event = callback_completed(
                record, succeeded=status is OperationStatus.SUCCEEDED, has_result=result is not None, error=error, at=at
            )
            ended = replace(record, status=status, result=result, error=error, ended_at=at)
            outbox = outbox_store.Prepared(outbox_store.operation_events(execution_id, names, [ended], at))
            with self.pipelined():
                stored_error = None if error is None else sql.adapt_json(error)
                hold.execute(statements.complete_callback, [status.value, result, stored_error, moment, pk])
                hold.execute(statements.wake_execution, [moment, execution_pk])
                hold.execute(statements.insert_events(1), sql.event_params(execution_pk, event, ops))
                outbox.write()
        return CallbackOutcome(execution_id, ended, at)

    # The sweep: range scans on indexes of RUNNING executions.

    def due(self, now: datetime, limit: int) -> list[tuple[Any, datetime | None]]:
        """Executions whose wake-up has come and whose lease is free."""
        return list(due_query(now).values_list("pk", "wake_at")[:limit])

    def expired_leases(self, now: datetime, limit: int) -> list[Any]:
        """Executions whose invocation died: its lease lapsed without being let go."""
        return list(
            _running().filter(lease_expires_at__lt=now, lease_token__isnull=False).values_list("pk", flat=True)[:limit]
        )

    def with_expired_callbacks(self, execution_ids: list[Any], now: datetime) -> set[Any]:
        """Which of these executions have a callback past its deadline (one query)."""
        if not execution_ids:
            return set()
        return set(
            _expired_callbacks(now).filter(execution_id__in=execution_ids).values_list("execution_id", flat=True)
        )

    def _skip_locked(self, queryset: QuerySet[Execution]) -> QuerySet[Execution]:
        """Rows another transaction is writing: skipped where the database can, else waited for."""
        return queryset

    def time_out_executions(
        self,
        now: datetime,
        limit: int,
        error: dict[str, Any],
        events: Callable[[], list[HistoryRecord]],
        then: Callable[[list[str]], None] | None = None,
        outbox: Callable[[str, str, str, datetime], list[OutboxRecord]] | None = None,
    ) -> list[tuple[str, str, str]]:
        """End the executions past their timeout (lease free) as TIMED_OUT; returns (id, function
        name, execution name) of each. `then(ids)` runs in the same transaction, after, and so
        do the inserts of `outbox(id, function name, execution name, start)`'s events."""
        # Most sweeps find none: a plain read first, so those take no writer's lock (SQLite) and
        # no transaction (two round trips on PostgreSQL) every second; what comes due after it is
        # the next sweep's.
        if not timed_out_query(now).exists():
            return []
        with transaction.atomic():
            expired = self._skip_locked(timed_out_query(now))
            rows = list(expired.values_list("pk", "function_name", "execution_name", "created_at")[:limit])
            if not rows:
                return []
            Execution.objects.filter(pk__in=[row[0] for row in rows]).update(
                **ended(ExecutionStatus.TIMED_OUT, now, error)
            )
            for pk, *_ in rows:
                self.append_events(str(pk), events())
            if then is not None:
                then([str(row[0]) for row in rows])
            if outbox is not None:
                outbox_store.write([record for row in rows for record in outbox(str(row[0]), *row[1:])])
        return [(str(pk), function_name, execution_name) for pk, function_name, execution_name, _ in rows]

    def time_out_callbacks(
        self,
        execution_id: str,
        now: datetime,
        error_for: Callable[[OperationRecord], dict[str, Any] | None],
        event_for: Callable[[OperationRecord, dict[str, Any]], HistoryRecord],
    ) -> int:
        """Time out the execution's callbacks past their deadlines, unless an invocation holds its
        lease; each only if still pending and past a deadline when written (a completion or a
        heartbeat that committed first wins). Returns how many."""
        expired = _expired_callbacks(now).filter(execution_id=execution_id)
        count, timed_out = 0, []
        with transaction.atomic():
            # Lock the execution as an invocation would; skip it if one holds the lease now.
            if not _running().filter(pk=execution_id).filter(_lease_free(now)).update(updated_at=now):
                return 0
            for row in expired.values_list("pk", *sql.OPERATION_FIELDS):
                record = sql.record(row[1:])
                error = error_for(record)
                if error is None or not expired.filter(pk=row[0]).update(
                    status=OperationStatus.TIMED_OUT, error=error, ended_at=now
                ):
                    continue
                count += 1
                self.append_events(execution_id, [event_for(record, error)])
                timed_out.append(replace(record, status=OperationStatus.TIMED_OUT, error=error, ended_at=now))
            outbox_store.write_operation_events(execution_id, timed_out, now)
        return count


@contextmanager
def _no_transaction() -> Iterator[None]:
    """Nothing around the block (a dialect's hooks that its database does not need)."""
    yield
