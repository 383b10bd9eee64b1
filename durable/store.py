"""The journal store: every database read and write of the engine's hot path lives here.

Writes made under a lease are fenced: the same transaction first updates the execution row
only if it still carries this invocation's lease token and is RUNNING. A worker that lost its
lease (or whose execution was stopped) writes nothing and gets LeaseLostError.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction

from durable import clock, dispatch
from durable.events import callback_completed
from durable.exceptions import (
    CallbackAlreadyCompletedError,
    CallbackExpiredError,
    CallbackNotFoundError,
    CheckpointFailedError,
    CheckpointRefusedError,
    DatabaseUnreachableError,
    LeaseLostError,
)
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
    "heartbeat_seconds",
    "started_at",
    "ended_at",
)
_DATETIME_FIELDS = frozenset(
    {"next_attempt_at", "wait_until", "callback_deadline", "heartbeat_deadline", "started_at", "ended_at"}
)
_UPDATABLE_FIELDS = [f for f in _OPERATION_FIELDS if f not in ("operation_id", "parent_id", "type", "sub_type", "name")]


def ended(status: str, now: datetime, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields of an execution that ends outside an invocation (stop, sweep): lease let go."""
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


@dataclass(frozen=True)
class Lease:
    execution: Execution
    token: str
    took_over: bool  # the previous holder never released it: that invocation died


def acquire_lease(execution_id: str, owner: str, now: datetime, ttl_seconds: float) -> Lease | None:
    """Take the lease of a RUNNING execution if it is free or expired; None if not taken.

    Raises DatabaseUnreachableError if the database does not answer (nothing else has run)."""
    try:
        return _take_lease(execution_id, owner, now, ttl_seconds)
    except (OperationalError, InterfaceError) as exc:
        raise DatabaseUnreachableError(" ".join(str(exc).split())) from exc


def _take_lease(execution_id: str, owner: str, now: datetime, ttl_seconds: float) -> Lease | None:
    token = secrets.token_hex(16)
    ops = connection.ops
    sql = _sql()
    params = [
        token,
        owner,
        ops.adapt_datetimefield_value(now + timedelta(seconds=ttl_seconds)),
        ops.adapt_datetimefield_value(now),
        _pk(execution_id),
        ExecutionStatus.RUNNING.value,
        ops.adapt_datetimefield_value(now),
    ]
    # On SQLite, an UPDATE outside a transaction reads first and takes the write lock late
    # (the upgrade our IMMEDIATE transactions avoid); see the README's benchmark notes. On
    # PostgreSQL the statement alone is one round trip instead of three.
    immediate = transaction.atomic() if connection.vendor == "sqlite" else nullcontext()
    with immediate, connection.cursor() as cursor:
        # Raw SQL: this runs once per invocation, and the ORM's statement building cost more
        # than the database's work. RETURNING reads the execution in the same statement.
        if sql.acquire_returning:
            cursor.execute(sql.acquire + sql.acquire_returning, params)
            row = cursor.fetchone()
            if row is None:
                return None
            execution = sql.execution_from_row(row)
        else:
            cursor.execute(sql.acquire, params)
            if not cursor.rowcount:
                return None
            execution = Execution.objects.get(pk=execution_id)
    return Lease(execution, token, took_over=execution.consecutive_deaths > 0)


def renew_lease(execution_id: str, token: str, now: datetime, ttl_seconds: float) -> bool:
    """Extend a lease still held; False if it was lost."""
    return bool(
        Execution.objects.filter(pk=execution_id, lease_token=token, status=ExecutionStatus.RUNNING).update(
            lease_expires_at=now + timedelta(seconds=ttl_seconds)
        )
    )


def expire_lease(execution_id: str, token: str, now: datetime) -> bool:
    """End a lease at once without releasing it, so the next holder counts this one as dead."""
    return bool(Execution.objects.filter(pk=execution_id, lease_token=token).update(lease_expires_at=now, wake_at=now))


def record_death(execution_id: str, token: str, operation_id: str, count: int, clock: Any) -> None:
    """Note that invocations died `count` times in a row at `operation_id` (fenced)."""
    kept = Execution.objects.filter(pk=execution_id, lease_token=token, status=ExecutionStatus.RUNNING).update(
        died_at_operation=operation_id, deaths_at_operation=count, updated_at=clock()
    )
    if not kept:
        raise LeaseLostError(f"lost the lease of execution {execution_id}")


def load_journal(execution_id: str, *, first_invocation: bool = False) -> dict[str, OperationRecord]:
    """The whole journal of an execution, in order, in one query.

    `first_invocation`: the caller's lease was the execution's first (invocation_count 1), so
    nothing was ever written under a lease and the journal is empty: no query.
    """
    if first_invocation:
        return {}
    rows = Operation.objects.filter(execution_id=execution_id).order_by("id").values_list(*_OPERATION_FIELDS)
    journal: dict[str, OperationRecord] = {}
    for row in rows:
        record = _record(row)
        journal[record.operation_id] = record
    return journal


def load_operation(execution_id: str, operation_id: str) -> OperationRecord | None:
    row = (
        Operation.objects.filter(execution_id=execution_id, operation_id=operation_id)
        .values_list(*_OPERATION_FIELDS)
        .first()
    )
    return _record(row) if row else None


def _record(row: tuple[Any, ...]) -> OperationRecord:
    values = dict(zip(_OPERATION_FIELDS, row, strict=True))
    values["type"] = OperationType(values["type"])
    values["status"] = OperationStatus(values["status"])
    return OperationRecord(**values)


def _rows(execution_id: str, checkpoints: Iterable[Checkpoint]) -> tuple[list[list[Any]], list[list[Any]]]:
    """The parameters of the operations' upserts (the last state of each) and of their events."""
    latest: dict[str, OperationRecord] = {}
    events: list[HistoryRecord] = []
    for checkpoint in checkpoints:
        latest[checkpoint.record.operation_id] = checkpoint.record
        events.extend(checkpoint.events)
    ops = connection.ops
    pk = _pk(execution_id)
    operations = [
        [pk] + [_adapt(ops, field, getattr(record, field)) for field in _OPERATION_FIELDS] for record in latest.values()
    ]
    return operations, [_event_params(pk, e, ops) for e in events]


def _many_rows(statement: str, rows: list[list[Any]]) -> tuple[str, list[Any]]:
    """One INSERT of all `rows` from a one-row INSERT statement (its VALUES group repeated)."""
    head, _, rest = statement.partition(" VALUES ")
    group, tail = rest[: rest.index(")") + 1], rest[rest.index(")") + 1 :]
    return f"{head} VALUES {', '.join([group] * len(rows))}{tail}", [value for row in rows for value in row]


def _adapt(ops: Any, field: str, value: Any) -> Any:
    if value is None:
        return None
    if field in _DATETIME_FIELDS:
        return ops.adapt_datetimefield_value(value)
    if field == "error":
        return ops.adapt_json_value(value, DjangoJSONEncoder)
    return value


def _event_params(pk: Any, event: HistoryRecord, ops: Any = None) -> list[Any]:
    op = event.operation
    ops = ops or connection.ops
    assert event.timestamp is not None
    return [
        pk,
        event.event_type,
        op.operation_id if op else None,
        op.parent_id if op else None,
        op.name if op else None,
        op.sub_type if op else None,
        ops.adapt_datetimefield_value(event.timestamp),
        ops.adapt_json_value(event.details, DjangoJSONEncoder),
    ]


def _pk(execution_id: str) -> Any:
    return Execution._meta.pk.get_db_prep_value(uuid.UUID(str(execution_id)), connection)


class _Statements:
    # Table and column names come from the models' metadata, quoted; values are parameters.
    def __init__(self) -> None:
        qn = connection.ops.quote_name
        op_table, exec_table = qn(Operation._meta.db_table), qn(Execution._meta.db_table)
        op_columns = [Operation._meta.get_field("execution").column, *_OPERATION_FIELDS]
        self.upsert_operation = (
            f"INSERT INTO {op_table} ({', '.join(qn(c) for c in op_columns)}) "
            f"VALUES ({', '.join(['%s'] * len(op_columns))}) "
            f"ON CONFLICT ({qn('execution_id')}, {qn('operation_id')}) DO UPDATE SET "
            + ", ".join(f"{qn(c)} = excluded.{qn(c)}" for c in _UPDATABLE_FIELDS)
        )
        event_columns = [
            "execution_id",
            "event_type",
            "operation_id",
            "parent_id",
            "name",
            "sub_type",
            "timestamp",
            "details",
        ]
        self.insert_event = (
            f"INSERT INTO {qn(HistoryEvent._meta.db_table)} ({', '.join(qn(c) for c in event_columns)}) "
            f"VALUES ({', '.join(['%s'] * len(event_columns))})"
        )
        # A token still set means the last invocation never finished: it died.
        self.acquire = (
            f"UPDATE {exec_table} SET {qn('lease_token')} = %s, {qn('lease_owner')} = %s, "
            f"{qn('lease_expires_at')} = %s, {qn('invocation_count')} = {qn('invocation_count')} + 1, "
            f"{qn('consecutive_deaths')} = CASE WHEN {qn('lease_token')} IS NULL "
            f"THEN {qn('consecutive_deaths')} ELSE {qn('consecutive_deaths')} + 1 END, {qn('updated_at')} = %s "
            f"WHERE {qn('id')} = %s AND {qn('status')} = %s "
            f"AND ({qn('lease_token')} IS NULL OR {qn('lease_expires_at')} < %s)"
        )
        # The execution's columns, read back by the lease's UPDATE where the database can
        # (PostgreSQL; SQLite >= 3.35), converted as the ORM converts them.
        self.execution_fields: list[Any] = list(Execution._meta.concrete_fields)
        self.acquire_returning = (
            " RETURNING " + ", ".join(qn(f.column) for f in self.execution_fields)
            if connection.features.can_return_columns_from_insert
            else ""
        )
        self.insert_execution = (
            f"INSERT INTO {exec_table} ({', '.join(qn(f.column) for f in self.execution_fields)}) "
            f"VALUES ({', '.join(['%s'] * len(self.execution_fields))})"
        )
        self.execution_converters = []
        for f in self.execution_fields:
            col = f.get_col(Execution._meta.db_table)
            converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            self.execution_converters.append((col, converters))
        self.fence = (
            f"UPDATE {exec_table} SET {qn('updated_at')} = %s "
            f"WHERE {qn('id')} = %s AND {qn('lease_token')} = %s AND {qn('status')} = %s"
        )
        # A callback's time-out, written only if it is still pending and past a deadline when
        # the statement runs: a completion or heartbeat that committed first wins.
        self.time_out_callback = (
            f"UPDATE {op_table} SET {qn('status')} = %s, {qn('error')} = %s, {qn('ended_at')} = %s "
            f"WHERE {qn('execution_id')} = %s AND {qn('operation_id')} = %s AND {qn('status')} = %s "
            f"AND ({qn('callback_deadline')} <= %s OR {qn('heartbeat_deadline')} <= %s)"
        )

    def execution_from_row(self, row: tuple[Any, ...]) -> Execution:
        values = []
        for value, (col, converters) in zip(row, self.execution_converters, strict=True):
            for converter in converters:
                value = converter(value, col, connection)
            values.append(value)
        return Execution.from_db(connection.alias, [f.attname for f in self.execution_fields], values)


_statements: dict[str, _Statements] = {}


def _sql() -> _Statements:
    vendor = connection.vendor
    statements = _statements.get(vendor)
    if statements is None:
        statements = _statements[vendor] = _Statements()
    return statements


def insert_execution(execution: Execution, events: Iterable[HistoryRecord]) -> None:
    """Insert a new execution row and its first events, in one transaction (raw SQL: the ORM's
    insert machinery cost more than the database's work, on the path that starts every
    execution; the statements are built before the transaction begins, so SQLite's writer lock
    is held only while they run)."""
    sql = _sql()
    values = [f.get_db_prep_save(getattr(execution, f.attname), connection) for f in sql.execution_fields]
    pk = _pk(str(execution.pk))
    event_rows = [_event_params(pk, e) for e in events]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql.insert_execution, values)
        cursor.executemany(sql.insert_event, event_rows)
    execution._state.adding = False
    execution._state.db = connection.alias


def append_events(execution_id: str, events: Iterable[HistoryRecord]) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(_sql().insert_event, [_event_params(_pk(execution_id), e) for e in events])


_DIVISION_BY_ZERO = "22012"


def _one_round_trip() -> bool:
    """Whether a journal write can go as one multi-statement query: on PostgreSQL (Django's
    psycopg cursors bind parameters client-side, so such a query takes them), outside any
    transaction of the caller's (a transactional step's writes join its transaction)."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


@contextmanager
def _pipelined() -> Iterator[None]:
    """On PostgreSQL, send the statements inside without waiting for each reply (psycopg's
    pipeline mode): a checkpoint's fence, upserts and events cost one round trip, not one each
    plus BEGIN. Errors surface when the block ends, as Django's DatabaseErrors."""
    if connection.vendor != "postgresql":
        yield
        return
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.pipeline():
        yield


@contextmanager
def _checkpoint_guard(execution_id: str) -> Iterator[None]:
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


class LeasedJournal:
    """The JournalWriter of one invocation: writes fenced by its lease token."""

    def __init__(self, execution_id: str, token: str, clock: Any) -> None:
        self.execution_id = execution_id
        self.token = token
        self.clock = clock
        self._pk = _pk(execution_id)

    def _fence(self, **changes: Any) -> tuple[str, list[Any]]:
        """The fence (and `changes`) on the execution row: it updates the row only under our lease."""
        qn = connection.ops.quote_name
        sql, params = _sql().fence, []
        if changes:
            fields: list[Any] = [Execution._meta.get_field(name) for name in changes]
            sets = "".join(f", {qn(f.column)} = %s" for f in fields)
            sql = sql.replace(" WHERE ", sets + " WHERE ", 1)
            params = [f.get_db_prep_save(changes[f.name], connection) for f in fields]
        now = connection.ops.adapt_datetimefield_value(self.clock())
        return sql, [now, *params, self._pk, self.token, ExecutionStatus.RUNNING.value]

    def write(self, checkpoints: list[Checkpoint]) -> None:
        if _one_round_trip():
            self._write_at_once(checkpoints)
        else:
            self._write_in_transaction(checkpoints)

    def _write_in_transaction(
        self,
        checkpoints: list[Checkpoint],
        events: Iterable[HistoryRecord] = (),
        watched_callbacks: list[str] | None = None,
        **changes: Any,
    ) -> bool:
        """The fence, the operations (the last state of each), the events and `changes` in one
        transaction; the fence failing rolls it back. The statements are built before the
        transaction begins, so SQLite's single writer lock is held only while they run. Returns
        whether a watched callback completed meanwhile (see `finish`)."""
        with _checkpoint_guard(self.execution_id):
            fence_sql, fence_params = self._fence(**changes)
            operations, event_rows = _rows(self.execution_id, checkpoints)
            event_rows += [_event_params(self._pk, e) for e in events]
            sql = _sql()
            with transaction.atomic(), connection.cursor() as fence, connection.cursor() as cursor:
                with _pipelined():
                    fence.execute(fence_sql, fence_params)
                    if operations:
                        cursor.executemany(sql.upsert_operation, operations)
                    if event_rows:
                        cursor.executemany(sql.insert_event, event_rows)
                # What was sent after the fence is in this transaction, which this rolls back.
                if not fence.rowcount:
                    raise LeaseLostError(f"lost the lease of execution {self.execution_id}")
                if watched_callbacks and (
                    Operation.objects.filter(execution_id=self.execution_id, operation_id__in=watched_callbacks)
                    .exclude(status=OperationStatus.STARTED)
                    .exists()
                ):
                    Execution.objects.filter(pk=self.execution_id).update(wake_at=self.clock())
                    return True
        return False

    def _write_at_once(
        self, checkpoints: list[Checkpoint], events: Iterable[HistoryRecord] = (), **changes: Any
    ) -> None:
        """PostgreSQL, outside any transaction: the fence, the operations and the events in one
        multi-statement query, which the server runs as one transaction, in one round trip
        (instead of two: the statements, then COMMIT once the fence is known to have held). A
        lost lease makes the fence divide by zero, which rolls the whole query back."""
        with _checkpoint_guard(self.execution_id):
            fence_sql, params = self._fence(**changes)
            statements = [f"WITH fenced AS ({fence_sql} RETURNING 1) SELECT 1 / (SELECT count(*) FROM fenced)"]
            operations, event_rows = _rows(self.execution_id, checkpoints)
            event_rows += [_event_params(self._pk, e) for e in events]
            for statement, rows in ((_sql().upsert_operation, operations), (_sql().insert_event, event_rows)):
                if rows:
                    sql, values = _many_rows(statement, rows)
                    statements.append(sql)
                    params += values
            try:
                with connection.cursor() as cursor:
                    cursor.execute("; ".join(statements), params)
            except DatabaseError as exc:
                if getattr(exc.__cause__, "sqlstate", None) == _DIVISION_BY_ZERO:
                    raise LeaseLostError(f"lost the lease of execution {self.execution_id}") from None
                raise

    def transaction(self) -> AbstractContextManager[Any]:
        return transaction.atomic()

    def reload(self, operation_id: str) -> OperationRecord | None:
        return load_operation(self.execution_id, operation_id)

    def time_out(self, record: OperationRecord, events: list[HistoryRecord], now: datetime) -> bool:
        """The fence, then the callback's time-out only if it is still pending and past a
        deadline, then its events; False if a completion or heartbeat committed first."""
        with _checkpoint_guard(self.execution_id):
            ops = connection.ops
            fence_sql, fence_params = self._fence()
            at = ops.adapt_datetimefield_value(now)
            params = [
                record.status.value,
                ops.adapt_json_value(record.error, DjangoJSONEncoder),
                ops.adapt_datetimefield_value(record.ended_at),
                self._pk,
                record.operation_id,
                OperationStatus.STARTED.value,
                at,
                at,
            ]
            event_rows = [_event_params(self._pk, e) for e in events]
            sql = _sql()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(fence_sql, fence_params)
                if not cursor.rowcount:
                    raise LeaseLostError(f"lost the lease of execution {self.execution_id}")
                cursor.execute(sql.time_out_callback, params)
                if not cursor.rowcount:
                    return False
                cursor.executemany(sql.insert_event, event_rows)
        return True

    def finish(
        self,
        checkpoints: list[Checkpoint],
        events: list[HistoryRecord],
        *,
        watched_callbacks: list[str] | None = None,
        **changes: Any,
    ) -> bool:
        """End the invocation: last checkpoints, the execution's new state, lease released.

        `watched_callbacks` are callbacks this invocation saw pending. One completed meanwhile
        makes the execution due now, so its completion is never lost. Returns True if so.
        """
        released = {
            "lease_token": None,
            "lease_owner": None,
            "lease_expires_at": None,
            "consecutive_deaths": 0,
            "died_at_operation": None,
            "deaths_at_operation": 0,
            "failed_invocations": 0,
        }
        released.update(changes)
        if not watched_callbacks and _one_round_trip():
            self._write_at_once(checkpoints, events, **released)
            return False
        return self._write_in_transaction(checkpoints, events, watched_callbacks, **released)


def complete_callback(
    callback_id: str,
    *,
    status: OperationStatus,
    result: str | None = None,
    error: dict[str, Any] | None = None,
    heartbeat: bool = False,
) -> Operation:
    """Complete (or, with `heartbeat`, extend) a pending callback and make its execution due.

    Whoever commits first wins: the time is read once this holds the execution's row, so a
    time-out that committed first makes this CallbackExpiredError, and one that comes after
    finds the callback completed (or its heartbeat deadline moved) and writes nothing.
    Raises CallbackNotFoundError, CallbackAlreadyCompletedError, CallbackExpiredError; in each
    case nothing is written.
    """
    with transaction.atomic():
        op = Operation.objects.filter(callback_id=callback_id).first()
        if op is None:
            raise CallbackNotFoundError(f"no callback with id {callback_id!r}")
        # Lock order: the execution row first, as invocations do, then the operation.
        running = Execution.objects.filter(pk=op.execution_id, status=ExecutionStatus.RUNNING).update(
            updated_at=clock.now()
        )
        now = clock.now()
        op.refresh_from_db()
        if op.status == OperationStatus.TIMED_OUT:
            raise CallbackExpiredError(f"callback {callback_id!r} timed out before this arrived")
        if op.status != OperationStatus.STARTED:
            raise CallbackAlreadyCompletedError(f"callback {callback_id!r} was already completed ({op.status})")
        if not running:
            raise CallbackNotFoundError(f"callback {callback_id!r} belongs to an execution that has ended")
        for deadline in (op.callback_deadline, op.heartbeat_deadline):
            if deadline is not None and now >= deadline:
                raise CallbackExpiredError(f"callback {callback_id!r} expired at {deadline.isoformat()}")
        record = _record(tuple(getattr(op, f) for f in _OPERATION_FIELDS))
        if heartbeat:
            if op.heartbeat_seconds:
                op.heartbeat_deadline = now + timedelta(seconds=op.heartbeat_seconds)
                op.save(update_fields=["heartbeat_deadline"])
            return op
        op.status = status
        op.result = result
        op.error = error
        op.ended_at = now
        op.save(update_fields=["status", "result", "error", "ended_at"])
        Execution.objects.filter(pk=op.execution_id, status=ExecutionStatus.RUNNING).update(wake_at=now)
        event = callback_completed(
            record, succeeded=status is OperationStatus.SUCCEEDED, has_result=result is not None, error=error, at=now
        )
        append_events(str(op.execution_id), [event])
        dispatch.on_commit_wake(str(op.execution_id), now)
    return op
