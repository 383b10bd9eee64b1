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

Each statement of those queries runs as EXECUTE of a statement prepared once per connection,
the PREPARE sent in the same query the first time (no round trip more): planning an UPDATE of the
executions table (a dozen indexes to consider) cost more of the server's time than running it.
See `_Prepared`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet
from psycopg.types.datetime import TimestamptzLoader

from durable import conf
from durable.exceptions import LeaseLostError
from durable.models import Execution, Operation
from durable.outbox import OutboxRecord
from durable.state import Checkpoint, HistoryRecord, OperationRecord, OperationStatus
from durable.store import outbox as outbox_store
from durable.store import sql
from durable.store.base import NextLease, SqlJournalStore
from durable.store.leased import LeasedJournal, checkpoint_guard

_DIVISION_BY_ZERO = "22012"
log = logging.getLogger("durable.store")

# Statements with more placeholders are sent as they are (a batch of many rows is rare, and each
# row count would be a statement of its own on the server).
MOST_PREPARED_PARAMETERS = 160

# psycopg binds parameters client-side here, splitting the query at its placeholders first, and
# keeps that split only for queries of 50 parameters at most (and 4,096 bytes): an invocation's
# end (67 parameters, more with the product's events or several operations) and a start with
# the product's event (52) were split again every time, 130 and 80 µs of a process's CPU each.
# Our queries are a few fixed texts, so the bound is raised for the process; the cache stays
# psycopg's (its least recently used entries go first), and the length bound stays.
MOST_CACHED_PARAMETERS = 256


def check_binding(settings_dict: dict[str, Any]) -> None:
    """Refuse, at start-up, a PostgreSQL database whose OPTIONS ask psycopg for server-side
    binding: the journal's writes are queries of several statements whose parameters psycopg
    binds on the client, which the server refuses to take as one prepared statement (every
    lease failed). Raises ImproperlyConfigured."""
    if (settings_dict.get("OPTIONS") or {}).get("server_side_binding"):
        raise ImproperlyConfigured(
            "DATABASES['default']['OPTIONS']['server_side_binding'] is set: the durable engine's "
            "PostgreSQL journal sends queries of several statements, whose parameters psycopg must "
            "bind on the client; remove the option (or set it to False)"
        )


def _cache_long_queries() -> None:
    from psycopg import _queries

    if isinstance(getattr(_queries, "MAX_CACHED_STATEMENT_PARAMS", None), int):
        _queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, MOST_CACHED_PARAMETERS)


_cache_long_queries()


@cache
def _prepared_form(statement: str) -> tuple[str, str, int] | None:
    """(a name, the PREPARE, the number of parameters) for `statement` (with %s placeholders), or
    None if it is sent as it is (too many parameters, or a literal % the placeholders would
    confuse). The name is the text's digest: one name, one text, on every connection."""
    parts = statement.split("%s")
    if len(parts) - 1 > MOST_PREPARED_PARAMETERS or any("%" in part for part in parts):
        return None
    name = "durable_" + hashlib.blake2b(statement.encode(), digest_size=12).hexdigest()
    body = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))
    _bodies[name] = body
    return name, body, len(parts) - 1


_bodies: dict[str, str] = {}  # a prepared statement's name (less its generation) -> its text
_PREPARE = re.compile(r"PREPARE (durable_[0-9a-f]{24})(?:_\d+)? AS [^;]*; ")
_EXECUTE = re.compile(r"EXECUTE (durable_[0-9a-f]{24})(?:_\d+)?(?:\((?:[^()']|'(?:[^']|'')*')*\))?")


def readable(query: str) -> str:
    """A query this module sent as it reads without prepared statements: its PREPAREs left out,
    each EXECUTE replaced by its statement (with $1, $2... for the parameters). For logs and tests."""
    query = _PREPARE.sub("", query)
    return _EXECUTE.sub(lambda match: _bodies.get(match.group(1), match.group(0)), query)


class _Prepared:
    """The statements prepared on one connection of the server's (PREPARE outlives transactions,
    rolled back or not, and lasts as long as the session). `generation` names a fresh set once
    some went missing, so a PREPARE never collides with a statement left from before."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.generation = 0
        # statement -> (its name, its PREPARE, its EXECUTE) in this generation; None: sent as it is.
        self.forms: dict[str, tuple[str, str, str] | None] = {}

    def _form(self, statement: str) -> tuple[str, str, str] | None:
        found = _prepared_form(statement)
        if found is None:
            return None
        digest, body, count = found
        name = f"{digest}_{self.generation}" if self.generation else digest
        execute = f"EXECUTE {name}({', '.join(['%s'] * count)})" if count else f"EXECUTE {name}"
        return name, f"PREPARE {name} AS {body}", execute

    def query(self, statements: Sequence[str], *, explain: bool = False) -> tuple[str, set[str]]:
        """The statements as one query, PREPAREs first for those not prepared yet, then an
        EXECUTE for each (`explain`: an EXPLAIN EXECUTE, planned and not run); and the names it
        prepares (prepared once the server ran the query, or failed in it: the PREPAREs ran first)."""
        prepares, executes, names = [], [], set()
        for statement in statements:
            form = self.form(statement)
            if form is None:
                executes.append(statement)
                continue
            name, prepare, execute = form
            if name not in self.names and name not in names:
                prepares.append(prepare)
                names.add(name)
            executes.append(f"EXPLAIN {execute}" if explain else execute)
        return "; ".join(prepares + executes), names

    def form(self, statement: str) -> tuple[str, str, str] | None:
        """`statement`'s name, PREPARE and EXECUTE in this generation (None: sent as it is)."""
        try:
            return self.forms[statement]
        except KeyError:
            found = self.forms[statement] = self._form(statement)
            return found

    def prepared_statements(self) -> list[str]:
        """The statements prepared on this session (in the order they were first sent)."""
        return [s for s, form in self.forms.items() if form is not None and form[0] in self.names]

    def forget(self) -> None:
        self.names = set()
        self.forms = {}
        self.generation += 1


_prepared: weakref.WeakKeyDictionary[Any, _Prepared] = weakref.WeakKeyDictionary()
# A process whose prepared statements went missing this many times stops preparing: behind a
# pooler in transaction mode (PgBouncer), each transaction may run on another server session.
MOST_LOSSES = 5
_losses = 0


def _missing_statement(exc: BaseException) -> bool:
    """Whether this error says the prepared statements are not as this process believes: one is
    gone (its session was reset or is another: a pooler, DISCARD ALL), one no longer fits its
    tables (a migration changed a result), or one exists already."""
    cause = exc.__cause__
    code = getattr(cause, "sqlstate", None)
    return code in ("26000", "42P05") or (code == "0A000" and "cached plan" in str(cause))


def _lost() -> None:
    global _losses
    _losses += 1
    if _losses == MOST_LOSSES:
        log.warning(
            "prepared statements went missing %d times (a connection pooler in transaction mode?): "
            "this process sends its statements unprepared from now on; set "
            "DURABLE_POSTGRES_PREPARED_STATEMENTS=false to say so at start",
            _losses,
        )


def preparing() -> bool:
    return _losses < MOST_LOSSES and bool(conf.get("POSTGRES_PREPARED_STATEMENTS"))


def _session_prepared() -> _Prepared:
    """The statements prepared on the default connection's current session."""
    prepared = _prepared.get(connection.connection)
    if prepared is None:
        prepared = _prepared[connection.connection] = _Prepared()
    return prepared


def _run(cursor: Any, statements: Sequence[str], params: Sequence[Any]) -> None:
    """Run `statements` as one query (one round trip, one implicit transaction), the cursor left
    at the first one's result, as prepared statements while `preparing()`. If the server says a
    prepared statement is missing, the query (rolled back whole) is sent again, preparing anew."""
    if preparing():
        connection.ensure_connection()
        prepared = _session_prepared()
        for _ in range(2):
            query, names = prepared.query(statements)
            try:
                cursor.execute(query, params)
            except DatabaseError as exc:
                if not _missing_statement(exc):
                    if getattr(exc.__cause__, "sqlstate", None) is not None:
                        prepared.names |= names  # the server ran the PREPAREs, then failed a statement
                    raise
                prepared.forget()
                _lost()
                if connection.in_atomic_block:
                    raise  # the caller's transaction is aborted: nothing to run again in it
                if not preparing():
                    break
                continue
            prepared.names |= names
            for _ in names:
                cursor.nextset()  # past each PREPARE's result, to the first statement's
            return
    cursor.execute("; ".join(statements), params)


def _warm(statements: Sequence[str]) -> None:
    """On a session just opened: prepare `statements` and have the server make each one's
    generic plan (EXPLAIN EXECUTE: planned, not run; the plan kept for when the server chooses
    it, after its first custom ones), which also loads the catalog entries of the tables and
    indexes they touch into the server process. Without it the first invocation on a new session
    paid for both (a 3-step one in-process: 6.7 to 8.5 ms, the next one 3.5 to 4.2; with it 4.8),
    and a burst of timers after a worker's renewal was that much late. One query: with a round
    trip per statement the renewal took 10 to 12 ms, so 7.4 to 9.5 (the new connection alone 3.5
    to 4), and a job that arrives meanwhile waits for it. Never raises: if it fails, the
    statements are prepared anew at their first use (names of a new generation)."""
    prepared = _session_prepared()
    # (Every one of them has a prepared form: they were prepared on the old session.)
    query, names = prepared.query(statements, explain=True)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # The generic plan, without a custom one made for NULL parameters counted among the
            # custom plans' costs the server weighs it against.
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            cursor.execute(query, [None] * query.count("%s"))
    except DatabaseError as exc:
        prepared.forget()  # which of them ran is not known: none is believed prepared
        log.warning("could not warm the new database session: %s", exc)
    else:
        prepared.names |= names


@cache
def _lease_and_journal() -> tuple[str, str]:
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
    return statements.returning_execution, journal


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


def _read_timestamps(cursor: Any) -> None:
    """In UTC (Django's connection zone with USE_TZ, and so the session's), timestamps are read
    by psycopg's own loader (C), which gives the same datetimes, in `datetime.UTC`, as Django's
    (Python, a call per value): 0.5 ms less on a 1,000-step journal."""
    if settings.USE_TZ and connection.timezone is UTC:
        cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)


class _Results:
    """The results of a query's statements, one after the other (a cursor moves only forward)."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.position = 0

    def at(self, position: int) -> Any:
        while self.position < position:
            self.cursor.nextset()
            self.position += 1
        return self.cursor


class PostgresJournalStore(SqlJournalStore):
    def renew_connection(self) -> None:
        """A new session, given the statements the old one had prepared and planned (see `_warm`)."""
        old = _prepared.get(connection.connection) if connection.connection is not None else None
        statements = old.prepared_statements() if old is not None else []
        super().renew_connection()
        if statements and preparing():
            _warm(statements)

    def _take_lease(
        self, execution_id: str, params: list[Any]
    ) -> tuple[Execution, dict[str, OperationRecord] | None] | None:
        """The lease and the journal in one round trip (see the module's docstring)."""
        token, pk = params[0], params[4]
        with connection.cursor() as cursor:
            _read_timestamps(cursor)
            _run(cursor, _lease_and_journal(), [*params, pk, pk, token])
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
        next_lease: Callable[[], NextLease | None] | None = None,
    ) -> bool:
        if connection.in_atomic_block:
            return journal.write_in_transaction(checkpoints, events, changes, watched_callbacks, outbox)
        return self._write_at_once(journal, checkpoints, events, changes, outbox, watched_callbacks or [], next_lease)

    def _write_at_once(
        self,
        journal: LeasedJournal,
        checkpoints: list[Checkpoint],
        events: list[HistoryRecord],
        changes: dict[str, Any],
        outbox: Sequence[OutboxRecord],
        watched: list[str],
        next_lease: Callable[[], NextLease | None] | None = None,
    ) -> bool:
        """Returns whether a watched callback had completed (see LeasedJournal.finish). The next
        lease, if asked for, is the query's last statements: the lease's and the journal's."""
        records = journal.with_operation_events(checkpoints, outbox)
        with checkpoint_guard(journal.execution_id):
            fence_sql, params = journal.fence(changes)
            queries = [f"WITH fenced AS ({fence_sql} RETURNING 1) SELECT 1 / (SELECT count(*) FROM fenced)"]
            operations, event_rows = sql.checkpoint_rows(journal.pk, checkpoints)
            event_rows += sql.event_rows(journal.pk, events)
            statements = sql.statements()
            if operations:
                queries.append(statements.upsert_operations(len(operations)))
                params += [value for row in operations for value in row]
            if event_rows:
                queries.append(statements.insert_events(len(event_rows)))
                params += [value for row in event_rows for value in row]
            # The outbox's events in the same query, so in the same transaction.
            prepared = outbox_store.Prepared(records)
            outbox_queries, outbox_params = prepared.statements()
            queries += outbox_queries
            params += outbox_params
            if watched:
                # In the same transaction: a callback the invocation suspended on that was
                # completed meanwhile makes the execution due now. A completion that committed
                # before this query is seen here (each statement reads what was committed before
                # it); one that comes later waits for the execution's row, which the fence holds,
                # and makes the execution due itself.
                queries.append(_wake_if_completed(len(watched)))
                now = connection.ops.adapt_datetimefield_value(journal.clock())
                params += [now, journal.pk, journal.pk, *watched, OperationStatus.STARTED.value]
            last = len(queries) - 1  # the statement before the next lease's
            taking = next_lease() if next_lease is not None else None
            if taking is not None:
                queries += _lease_and_journal()
                params += [*taking.params, taking.pk, taking.pk, taking.token]
            woke, taken, journal_rows = False, None, None
            try:
                with connection.cursor() as cursor:
                    if taking is not None:
                        _read_timestamps(cursor)
                    _run(cursor, queries, params)
                    if watched or taking is not None:
                        results = _Results(cursor)
                        if watched:
                            woke = results.at(last).fetchone() is not None
                        if taking is not None:
                            taken = results.at(last + 1).fetchone()
                            journal_rows = results.at(last + 2).fetchall()
            except DatabaseError as exc:
                if getattr(exc.__cause__, "sqlstate", None) == _DIVISION_BY_ZERO:
                    raise LeaseLostError(f"lost the lease of execution {journal.execution_id}") from None
                raise
            if taking is not None:
                self.handed_over(taking, taken, sql.records(journal_rows or []) if taken is not None else None)
        prepared.after_commit()
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
        params = sql.execution_params(values)
        pk = sql.execution_pk(str(values["id"]))
        event_rows = sql.event_rows(pk, events)
        queries = [statements.insert_execution]
        if event_rows:
            queries.append(statements.insert_events(len(event_rows)))
            params += [value for row in event_rows for value in row]
        prepared = outbox_store.Prepared(outbox)
        outbox_queries, outbox_params = prepared.statements()
        with connection.cursor() as cursor:
            _run(cursor, queries + outbox_queries, params + outbox_params)
        prepared.after_commit()
        return statements.execution_from_values(values)

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        # Errors surface when the block ends, as Django's DatabaseErrors.
        connection.ensure_connection()
        with connection.wrap_database_errors, connection.connection.pipeline():
            yield

    def _skip_locked(self, queryset: QuerySet[Execution]) -> QuerySet[Execution]:
        return queryset.select_for_update(skip_locked=True)
