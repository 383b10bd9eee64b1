"""PostgreSQL: a journal write is one round trip, and the sweep skips rows being written.

Outside any transaction of the caller's, a write under a lease is one multi-statement query
the server runs as one transaction (Django's psycopg cursors bind parameters client-side, so
such a query takes them): the fence, the operations' upsert and the events' insert, one
statement each. A lost lease makes the fence divide by zero, which rolls the whole query back.
This halved a worker's CPU per execution against the statements then COMMIT (see the README's
benchmark notes). An invocation's end that suspends on callbacks adds one statement to that
query: the execution due now if one of them was completed meanwhile. Inside a caller's
transaction (a transactional step), the statements are pipelined (psycopg's pipeline mode) and
commit with the step.

The lease and the journal's load are one round trip too: the lease's UPDATE, then the journal's
SELECT, which reads rows only if that UPDATE gave this invocation the lease and it is not the
execution's first (whose journal is empty). Both run in the query's one implicit transaction,
so the execution's row stays locked from the lease until the journal is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from functools import cache
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import QuerySet
from psycopg.types.datetime import TimestamptzLoader

from durable.exceptions import LeaseLostError
from durable.models import Execution, Operation
from durable.outbox import OutboxRecord
from durable.state import Checkpoint, HistoryRecord, OperationRecord, OperationStatus
from durable.store import outbox as outbox_store
from durable.store import sql
from durable.store.base import SqlJournalStore
from durable.store.leased import LeasedJournal, checkpoint_guard

_DIVISION_BY_ZERO = "22012"


@cache
def _lease_and_journal() -> str:
    """The lease's UPDATE ... RETURNING the execution; then the journal's SELECT, whose rows
    come only if the execution's row now carries the new token (this invocation took the lease)
    and this is not its first invocation. Parameters: the lease's, then the execution's pk
    twice and the token."""
    statements = sql.statements()
    assert statements.returning_execution is not None
    qn = connection.ops.quote_name
    taken = (
        f"SELECT 1 FROM {statements.exec_table} WHERE {qn('id')} = %s AND {qn('lease_token')} = %s "
        f"AND {qn('invocation_count')} > 1"
    )
    # The columns and order of `Statements.load_journal`, built whole (not by editing its text).
    journal = (
        f"SELECT {', '.join(qn(c) for c in sql.RECORD_FIELDS)} FROM {statements.op_table} "
        f"WHERE {qn(Operation._meta.get_field('execution').column)} = %s AND EXISTS ({taken}) ORDER BY {qn('id')}"
    )
    return f"{statements.returning_execution}; {journal}"


@cache
def _wake_if_completed(callbacks: int) -> str:
    """Make the execution due now (RETURNING a row) if one of these callbacks is no longer
    pending. Parameters: the time, the execution's pk twice, the callbacks' operation ids, the
    pending status."""
    statements = sql.statements()
    qn = connection.ops.quote_name
    execution = qn(Operation._meta.get_field("execution").column)
    ids = ", ".join(["%s"] * callbacks)
    return (
        f"UPDATE {statements.exec_table} SET {qn('wake_at')} = %s WHERE {qn('id')} = %s AND EXISTS ("
        f"SELECT 1 FROM {statements.op_table} WHERE {execution} = %s AND {qn('operation_id')} IN ({ids}) "
        f"AND {qn('status')} <> %s) RETURNING 1"
    )


class PostgresJournalStore(SqlJournalStore):
    def _take_lease(
        self, execution_id: str, params: list[Any]
    ) -> tuple[Execution, dict[str, OperationRecord] | None] | None:
        """The lease and the journal in one round trip (see the module's docstring).

        In UTC (Django's connection zone with USE_TZ, and so the session's), timestamps are read
        by psycopg's own loader (C), which gives the same datetimes, in `datetime.UTC`, as
        Django's (Python, a call per value): 0.5 ms less on a 1,000-step journal."""
        token, pk = params[0], params[4]
        tz = connection.timezone if settings.USE_TZ else None
        with connection.cursor() as cursor:
            if tz is UTC:
                cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
            cursor.execute(_lease_and_journal(), [*params, pk, pk, token])
            row = cursor.fetchone()
            cursor.nextset()
            rows = cursor.fetchall()
        if row is None:
            return None
        execution = sql.statements().execution_from_row(row)
        return execution, sql.records(rows)

    def write(
        self,
        journal: LeasedJournal,
        checkpoints: list[Checkpoint],
        events: list[HistoryRecord],
        changes: dict[str, Any],
        watched_callbacks: list[str] | None,
        outbox: Sequence[OutboxRecord] = (),
    ) -> bool:
        if connection.in_atomic_block:
            return journal.write_in_transaction(checkpoints, events, changes, watched_callbacks, outbox)
        return self._write_at_once(journal, checkpoints, events, changes, outbox, watched_callbacks or [])

    def _write_at_once(
        self,
        journal: LeasedJournal,
        checkpoints: list[Checkpoint],
        events: list[HistoryRecord],
        changes: dict[str, Any],
        outbox: Sequence[OutboxRecord],
        watched: list[str],
    ) -> bool:
        """Returns whether a watched callback had completed (see LeasedJournal.finish)."""
        records = journal.with_operation_events(checkpoints, outbox)
        with checkpoint_guard(journal.execution_id):
            fence_sql, params = journal.fence(changes)
            queries = [f"WITH fenced AS ({fence_sql} RETURNING 1) SELECT 1 / (SELECT count(*) FROM fenced)"]
            operations, event_rows = sql.checkpoint_rows(journal.execution_id, checkpoints)
            event_rows += [sql.event_params(journal.pk, e) for e in events]
            statements = sql.statements()
            if operations:
                queries.append(statements.upsert_operations(len(operations)))
                params += [value for row in operations for value in row]
            if event_rows:
                queries.append(statements.insert_events(len(event_rows)))
                params += [value for row in event_rows for value in row]
            # The outbox's events in the same query, so in the same transaction.
            outbox_queries, outbox_params = outbox_store.statements(records)
            queries += outbox_queries
            params += outbox_params
            if watched:
                # Last, in the same transaction: a callback the invocation suspended on that was
                # completed meanwhile makes the execution due now. A completion that committed
                # before this query is seen here (each statement reads what was committed before
                # it); one that comes later waits for the execution's row, which the fence holds,
                # and makes the execution due itself.
                queries.append(_wake_if_completed(len(watched)))
                now = connection.ops.adapt_datetimefield_value(journal.clock())
                params += [now, journal.pk, journal.pk, *watched, OperationStatus.STARTED.value]
            woke = False
            try:
                with connection.cursor() as cursor:
                    cursor.execute("; ".join(queries), params)
                    if watched:
                        while cursor.nextset():  # to the last statement's result (it stays there)
                            pass
                        woke = cursor.fetchone() is not None
            except DatabaseError as exc:
                if getattr(exc.__cause__, "sqlstate", None) == _DIVISION_BY_ZERO:
                    raise LeaseLostError(f"lost the lease of execution {journal.execution_id}") from None
                raise
        outbox_store.after_commit(records, written=bool(outbox_queries))
        return woke

    def insert_execution(
        self, values: dict[str, Any], events: Iterable[HistoryRecord], outbox: Sequence[OutboxRecord] = ()
    ) -> Execution:
        """Outside a caller's transaction: the execution, its first events and its start's outbox
        event in one query, which the server runs as one transaction (one round trip). Inside
        one: the shared SQL, under a savepoint (a duplicate name leaves the caller's transaction
        usable)."""
        if connection.in_atomic_block:
            return super().insert_execution(values, events, outbox)
        statements = sql.statements()
        fields = statements.execution_fields
        params = [f.get_db_prep_save(values[f.attname], connection) for f in fields]
        pk = sql.execution_pk(str(values["id"]))
        event_rows = [sql.event_params(pk, e) for e in events]
        queries = [statements.insert_execution]
        if event_rows:
            queries.append(statements.insert_events(len(event_rows)))
            params += [value for row in event_rows for value in row]
        outbox_queries, outbox_params = outbox_store.statements(outbox)
        with connection.cursor() as cursor:
            cursor.execute("; ".join(queries + outbox_queries), params + outbox_params)
        outbox_store.after_commit(outbox, written=bool(outbox_queries))
        return Execution.from_db(connection.alias, [f.attname for f in fields], [values[f.attname] for f in fields])

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        # Errors surface when the block ends, as Django's DatabaseErrors.
        connection.ensure_connection()
        with connection.wrap_database_errors, connection.connection.pipeline():
            yield

    def _skip_locked(self, queryset: QuerySet[Execution]) -> QuerySet[Execution]:
        return queryset.select_for_update(skip_locked=True)
