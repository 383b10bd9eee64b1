"""The journal's statements, each built whole from the models' metadata, and its row codecs.

Table and column names come from the models (quoted by the connection); every value is a
parameter. Statements that take a number of rows or a set of columns are built for that number
or set and cached, never made by editing another statement's text.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connection, connections, models

from durable.models import START_OF, Execution, HistoryEvent, Operation
from durable.state import (
    TERMINAL_STATUSES,
    Checkpoint,
    HistoryRecord,
    Journal,
    OperationRecord,
    OperationStatus,
    OperationType,
)

OPERATION_FIELDS = (
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
    "max_attempts",
)
_DATETIME_FIELDS = frozenset(
    {"next_attempt_at", "wait_until", "callback_deadline", "heartbeat_deadline", "started_at", "ended_at"}
)
# OperationRecord's fields in order: the journal's SELECT reads them so, and a row builds a
# record positionally.
RECORD_FIELDS = tuple(f.name for f in fields(OperationRecord))
assert sorted(RECORD_FIELDS) == sorted(OPERATION_FIELDS)
# What an upsert may change of an operation that exists (its identity never changes).
_UPDATABLE_FIELDS = [f for f in OPERATION_FIELDS if f not in ("operation_id", "parent_id", "type", "sub_type", "name")]
_EVENT_COLUMNS = (
    "execution_id",
    "event_type",
    "operation_id",
    "parent_id",
    "name",
    "sub_type",
    "timestamp",
    "details",
    "started_at",
)


def _qn(name: str) -> str:
    return str(connection.ops.quote_name(name))


def _values(width: int, rows: int) -> str:
    group = f"({', '.join(['%s'] * width)})"
    return ", ".join([group] * rows)


class Statements:
    """The statements of one database vendor (made once per vendor: see `for_vendor`)."""

    def __init__(self) -> None:
        qn = _qn
        self.op_table, self.exec_table = qn(Operation._meta.db_table), qn(Execution._meta.db_table)
        self.event_table = qn(HistoryEvent._meta.db_table)
        self.op_columns = [Operation._meta.get_field("execution").column, *OPERATION_FIELDS]
        # The lease's and the fences' test of the execution's status. PostgreSQL runs them as
        # prepared statements (durable.store.postgresql) whose generic plan, made once without
        # the parameters' values, took an index that begins with the status (scanning every
        # RUNNING execution) over the primary key's: wrapped in IS TRUE, the test cannot lead
        # an index scan, and the key is the plan's only way in.
        status_is = f"({qn('status')} = %s) IS TRUE" if connection.vendor == "postgresql" else f"{qn('status')} = %s"
        self._status_is = status_is
        # A token still set means the last invocation never finished: it died.
        self.acquire = (
            f"UPDATE {self.exec_table} SET {qn('lease_token')} = %s, {qn('lease_owner')} = %s, "
            f"{qn('lease_expires_at')} = %s, {qn('invocation_count')} = {qn('invocation_count')} + 1, "
            f"{qn('consecutive_deaths')} = CASE WHEN {qn('lease_token')} IS NULL "
            f"THEN {qn('consecutive_deaths')} ELSE {qn('consecutive_deaths')} + 1 END, {qn('updated_at')} = %s "
            f"WHERE {qn('id')} = %s AND {status_is} "
            f"AND ({qn('lease_token')} IS NULL OR {qn('lease_expires_at')} < %s)"
        )
        # The execution's columns, read back by the lease's UPDATE where the database can
        # (PostgreSQL; SQLite >= 3.35), converted as the ORM converts them.
        self.execution_fields: list[Any] = list(Execution._meta.concrete_fields)
        self.returning_execution = (
            f"{self.acquire} RETURNING {', '.join(qn(f.column) for f in self.execution_fields)}"
            if connection.features.can_return_columns_from_insert
            else None
        )
        self.insert_execution = (
            f"INSERT INTO {self.exec_table} ({', '.join(qn(f.column) for f in self.execution_fields)}) "
            f"VALUES {_values(len(self.execution_fields), 1)}"
        )
        self._execution_attname_list = [f.attname for f in self.execution_fields]
        self._execution_attnames = frozenset(self._execution_attname_list)
        self.execution_converters = []
        for f in self.execution_fields:
            col = f.get_col(Execution._meta.db_table)
            converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            self.execution_converters.append((col, converters))
        self._converted_execution_columns = [
            (i, col, converters) for i, (col, converters) in enumerate(self.execution_converters) if converters
        ]
        # A callback's time-out, written only if it is still pending and past a deadline when
        # the statement runs: a completion or heartbeat that committed first wins.
        self.time_out_callback = (
            f"UPDATE {self.op_table} SET {qn('status')} = %s, {qn('error')} = %s, {qn('ended_at')} = %s "
            f"WHERE {qn('execution_id')} = %s AND {qn('operation_id')} = %s AND {qn('status')} = %s "
            f"AND ({qn('callback_deadline')} <= %s OR {qn('heartbeat_deadline')} <= %s)"
        )
        # A callback's completion (or heartbeat) from outside any lease, in raw SQL: the ORM's
        # query building was most of a sender's time (nine queries, 4 ms on SQLite). First the
        # execution's row, held by an UPDATE as an invocation holds it, found through the callback
        # (the row is RETURNed only while RUNNING); then, once it is held, the operation.
        self.hold_callback_execution = (
            f"UPDATE {self.exec_table} SET {qn('updated_at')} = %s WHERE {qn('id')} = "
            f"(SELECT {qn('execution_id')} FROM {self.op_table} WHERE {qn('callback_id')} = %s) AND {status_is} "
            f"RETURNING {qn('id')}, {qn('function_name')}, {qn('execution_name')}"
        )
        self.read_callback = (
            f"SELECT {qn('id')}, {', '.join(qn(c) for c in RECORD_FIELDS)} FROM {self.op_table} "
            f"WHERE {qn('callback_id')} = %s"
        )
        self.complete_callback = (
            f"UPDATE {self.op_table} SET {qn('status')} = %s, {qn('result')} = %s, {qn('error')} = %s, "
            f"{qn('ended_at')} = %s WHERE {qn('id')} = %s"
        )
        self.extend_callback = f"UPDATE {self.op_table} SET {qn('heartbeat_deadline')} = %s WHERE {qn('id')} = %s"
        self.wake_execution = f"UPDATE {self.exec_table} SET {qn('wake_at')} = %s WHERE {qn('id')} = %s"
        # The whole journal of one execution, in order (the unique index's rows, sorted), its columns in
        # OperationRecord's order: raw SQL, since the ORM's row machinery cost more than the
        # database's work (bench/steps.py's replay breakdown gives the figures).
        self.load_journal = (
            f"SELECT {', '.join(qn(c) for c in RECORD_FIELDS)} FROM {self.op_table} "
            f"WHERE {qn(Operation._meta.get_field('execution').column)} = %s ORDER BY {qn('id')}"
        )
        # The columns the ORM would convert a value from the database of (text and numbers come
        # from the driver as they are), with its converters and whether it holds a datetime.
        self.record_converters: list[tuple[int, Any, list[Any], bool]] = []
        for i, name in enumerate(RECORD_FIELDS):
            field: Any = Operation._meta.get_field(name)
            col = field.get_col(Operation._meta.db_table)
            converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if converters:
                self.record_converters.append((i, col, converters, name in _DATETIME_FIELDS))
        self._upserts: dict[int, str] = {}
        self._inserts: dict[int, str] = {}
        self._fences: dict[tuple[str, ...], str] = {}

    def upsert_operations(self, rows: int) -> str:
        """Insert `rows` operations, or update those that exist (all but their identity)."""
        if rows not in self._upserts:
            qn = _qn
            self._upserts[rows] = (
                f"INSERT INTO {self.op_table} ({', '.join(qn(c) for c in self.op_columns)}) "
                f"VALUES {_values(len(self.op_columns), rows)} "
                f"ON CONFLICT ({qn('execution_id')}, {qn('operation_id')}) DO UPDATE SET "
                + ", ".join(f"{qn(c)} = excluded.{qn(c)}" for c in _UPDATABLE_FIELDS)
            )
        return self._upserts[rows]

    def insert_events(self, rows: int) -> str:
        if rows not in self._inserts:
            self._inserts[rows] = (
                f"INSERT INTO {self.event_table} ({', '.join(_qn(c) for c in _EVENT_COLUMNS)}) "
                f"VALUES {_values(len(_EVENT_COLUMNS), rows)}"
            )
        return self._inserts[rows]

    def fence(self, columns: tuple[str, ...]) -> str:
        """Update the execution's `updated_at` and `columns` only while it is RUNNING under the
        given lease token: the guard of every write made under a lease."""
        if columns not in self._fences:
            qn = _qn
            fields: list[Any] = [Execution._meta.get_field(name) for name in columns]
            sets = "".join(f", {qn(field.column)} = %s" for field in fields)
            self._fences[columns] = (
                f"UPDATE {self.exec_table} SET {qn('updated_at')} = %s{sets} "
                f"WHERE {qn('id')} = %s AND {qn('lease_token')} = %s AND {self._status_is}"
            )
        return self._fences[columns]

    def new_execution(
        self,
        *,
        execution_id: Any,
        function_name: str,
        execution_name: str,
        payload: str,
        digest: str,
        now: datetime,
        timeout_seconds: int,
        **given: Any,
    ) -> dict[str, Any]:
        """A new execution's columns by attribute name, due now: these, `given` (other columns by
        attribute name), and each other field's default, as the model's constructor fills them
        in, without building a model on the path that starts every execution (its keyword
        handling cost more than the insert's parameters). Raises TypeError for an unknown name."""
        unknown = given.keys() - self._execution_attnames
        if unknown:
            raise TypeError(f"executions have no field {', '.join(sorted(unknown))}")
        given.update(
            {
                "id": execution_id,
                "function_name": function_name,
                "execution_name": execution_name,
                "input": payload,
                "input_hash": digest,
                "created_at": now,
                "updated_at": now,
                "timeout_seconds": timeout_seconds,
                "timeout_at": now + timedelta(seconds=timeout_seconds),
                "wake_at": now,
            }
        )
        return {f.attname: given[f.attname] if f.attname in given else f.get_default() for f in self.execution_fields}

    def execution_from_values(self, values: dict[str, Any]) -> Execution:
        """The model of an execution just inserted from `values` (`new_execution`'s)."""
        return Execution.from_db(
            connection.alias, self._execution_attname_list, [values[n] for n in self._execution_attname_list]
        )

    def execution_from_row(self, row: tuple[Any, ...]) -> Execution:
        """The model of an execution's row (its columns in `execution_fields`' order), its values
        converted as the ORM converts them (only the columns that have a converter are visited)."""
        if len(row) != len(self.execution_fields):
            raise ValueError(f"an execution row has {len(self.execution_fields)} columns, not {len(row)}")
        values = list(row)
        conn = connections[DEFAULT_DB_ALIAS]  # what `connection` stands for, looked up once
        for i, col, converters in self._converted_execution_columns:
            value = values[i]
            for converter in converters:
                value = converter(value, col, conn)
            values[i] = value
        return Execution.from_db(conn.alias, self._execution_attname_list, values)


@cache
def for_vendor(vendor: str) -> Statements:
    return Statements()


def statements() -> Statements:
    return for_vendor(connection.vendor)


def cursor() -> Any:
    """The cursor the journal's raw statements run on: our SQLite backend's lean one (the same
    statements and errors, less Django's layers, which ran inside the writers' lock), else Django's."""
    db = connections[DEFAULT_DB_ALIAS]
    lean = getattr(db, "journal_cursor", None)
    return lean() if lean is not None else db.cursor()


# Row codecs.


def execution_pk(execution_id: str) -> Any:
    return Execution._meta.pk.get_db_prep_value(uuid.UUID(str(execution_id)), connection)


def execution_uuid(value: Any) -> uuid.UUID:
    """An execution's key as the database gives it (a UUID, or SQLite's 32 hex digits) as a UUID."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def record(row: tuple[Any, ...]) -> OperationRecord:
    """An operation row (OPERATION_FIELDS, in order) as the replay core's record."""
    values = dict(zip(OPERATION_FIELDS, row, strict=True))
    values["type"] = OperationType(values["type"])
    values["status"] = OperationStatus(values["status"])
    return OperationRecord(**values)


_TYPES = {t.value: t for t in OperationType}
_STATUSES = {s.value: s for s in OperationStatus}
_TYPE, _STATUS = RECORD_FIELDS.index("type"), RECORD_FIELDS.index("status")


def records(rows: Iterable[Sequence[Any]]) -> Journal:
    """Journal rows as the driver returns them (`Statements.load_journal`'s columns), by
    operation id, converted as the ORM converts them: only the values that are not NULL (most
    of a step's columns are), a naive datetime made aware in the connection's time zone as
    Django's converters make it (without their calls), the enums by a look-up."""
    converting = for_vendor(connection.vendor).record_converters
    tz = connection.timezone if settings.USE_TZ else None
    journal = Journal()
    ended, waking = journal.ended, journal.waking  # Journal.add, inlined: this runs per row
    for row in rows:
        values = list(row)
        for i, col, converters, is_datetime in converting:
            value = values[i]
            if value is None:
                continue
            if is_datetime and value.__class__ is datetime:
                if tz is not None and value.tzinfo is None:
                    values[i] = value.replace(tzinfo=tz)
                continue
            for converter in converters:
                value = converter(value, col, connection)
            values[i] = value
        values[_TYPE] = type_ = _TYPES.get(values[_TYPE]) or OperationType(values[_TYPE])
        values[_STATUS] = status = _STATUSES.get(values[_STATUS]) or OperationStatus(values[_STATUS])
        record = OperationRecord(*values)
        journal[record.operation_id] = record
        if status in TERMINAL_STATUSES:
            ended.add(record.operation_id)
            if type_ is OperationType.CALLBACK:
                waking.append(record)
        else:
            waking.append(record)
    return journal


_TEXT, _WHOLE, _MOMENT, _OTHER = range(4)


@cache
def _kind(field: Any) -> int:
    if isinstance(field, (models.CharField, models.TextField)):
        return _TEXT
    if isinstance(field, models.IntegerField):
        return _WHOLE
    if isinstance(field, models.DateTimeField):
        return _MOMENT
    return _OTHER


def db_value(field: Any, value: Any) -> Any:
    """`field.get_db_prep_save(value, connection)`, with the values the engine writes most taken
    at once: text and whole numbers as they are, an aware UTC datetime adapted directly, NULL.
    Django's general path (to_python, time-zone checks) cost 1 to 3 microseconds a field, and a
    start writes 28 of them."""
    kind = _kind(field)
    if kind == _TEXT:
        if value is None or value.__class__ is str:
            return value
    elif kind == _WHOLE:
        if value is None or value.__class__ is int:
            return value
    elif kind == _MOMENT:
        if value is None:
            return None
        if value.__class__ is datetime and value.tzinfo is UTC:
            return connection.ops.adapt_datetimefield_value(value)
    return field.get_db_prep_save(value, connection)


def execution_params(values: dict[str, Any]) -> list[Any]:
    """The parameters of `Statements.insert_execution` for an execution's columns by attribute name."""
    return [db_value(f, values[f.attname]) for f in statements().execution_fields]


def adapt_json(value: Any) -> Any:
    return connection.ops.adapt_json_value(value, DjangoJSONEncoder)


def _adapt(ops: Any, field: str, value: Any) -> Any:
    if value is None:
        return None
    if field in _DATETIME_FIELDS:
        return ops.adapt_datetimefield_value(value)
    if field == "error":
        return ops.adapt_json_value(value, DjangoJSONEncoder)
    return value


def event_params(pk: Any, event: HistoryRecord, ops: Any = None, started: datetime | None = None) -> list[Any]:
    """The parameters of `Statements.insert_events` for one event (`started`: the time of its
    operation's start, which the row then stands for too; see `event_rows`)."""
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
        None if started is None else ops.adapt_datetimefield_value(started),
    ]


def _start_held_by(start: HistoryRecord, end: HistoryRecord) -> bool:
    """Whether `end`'s row can stand for `start` too: the start of the same operation, with no
    details of its own, just before it."""
    return (
        START_OF.get(end.event_type) == start.event_type
        and not start.details
        and start.operation is not None
        and end.operation is not None
        and start.operation.operation_id == end.operation.operation_id
        and start.timestamp is not None
    )


def event_rows(pk: Any, events: Iterable[HistoryRecord], ops: Any = None) -> list[list[Any]]:
    """The rows of these events, written together in this order: a step's (or child context's)
    start followed at once by its end is one row, the end's with the start's time in
    `started_at` (HistoryEvent.events reads it back as both). Most steps start and end in one
    commit, so a step writes one history row and one entry in each history index, not two."""
    ops = ops or connection.ops
    rows: list[list[Any]] = []
    start: HistoryRecord | None = None  # a start not written yet: the next event may hold it
    for event in events:
        if start is not None:
            if _start_held_by(start, event):
                rows.append(event_params(pk, event, ops, started=start.timestamp))
                start = None
                continue
            rows.append(event_params(pk, start, ops))
            start = None
        if event.event_type in _HELD_STARTS:
            start = event
        else:
            rows.append(event_params(pk, event, ops))
    if start is not None:
        rows.append(event_params(pk, start, ops))
    return rows


_HELD_STARTS = frozenset(START_OF.values())


def checkpoint_rows(pk: Any, checkpoints: Iterable[Checkpoint]) -> tuple[list[list[Any]], list[list[Any]]]:
    """The parameters of the operations' upserts (the last state of each) and of their events,
    for the execution whose key, as the database takes it, is `pk` (`execution_pk`): what every
    journal write made under a lease is built from."""
    latest: dict[str, OperationRecord] = {}
    events: list[HistoryRecord] = []
    for checkpoint in checkpoints:
        latest[checkpoint.record.operation_id] = checkpoint.record
        events.extend(checkpoint.events)
    ops = connection.ops
    operations = [
        [pk] + [_adapt(ops, field, getattr(op, field)) for field in OPERATION_FIELDS] for op in latest.values()
    ]
    return operations, event_rows(pk, events, ops)
