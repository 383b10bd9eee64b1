"""Django's SQLite backend, with writers that queue instead of sleeping.

SQLite lets one writer in at a time. A writer that finds the lock taken is put to sleep by
SQLite's busy handler for 1, 2, 5, 10, ... ms before it looks again, while a journal's write
transactions last about a tenth of a millisecond: with a few processes writing, most of their
time went to those sleeps (bench/workers.py; the README gives the figures).

Here every write transaction first takes an exclusive `flock` on a file beside the database,
waiting in the kernel, which wakes the next writer the moment the lock is let go at commit or
rollback; so writers from every process on the machine take turns without sleeping. The flock
only schedules: SQLite's own lock still guards the data, so a process that does not take it
(another program, the sqlite3 shell, a statement outside a transaction) meets SQLite's busy
handler as before, and a lock file that cannot be opened means SQLite's busy handler alone.
Readers take no lock. The kernel lets the lock go when its process dies.

A writer waits for the writer ahead of it however long its transaction lasts (SQLite's busy
timeout would have failed it after `timeout` seconds instead).

Checkpoints (WAL pages copied into the database file, with two fsyncs) are not SQLite's
automatic ones, which run inside the COMMIT that crosses the threshold, so inside the writers'
lock: every writer on the machine waited for the fsyncs, several times a second under load.
Our settings turn them off (`wal_autocheckpoint=0`) and each process instead asks a thread of
its own, with a connection of its own, for a checkpoint every CHECKPOINT_EVERY commits (after
the lock is let go). The thread runs a PASSIVE one, off every writer's path: it copies what the
WAL holds and runs the fsyncs. That alone never let the WAL restart from its start under steady
load (some commit always came between the copy's end and the next writer, and only a writer
finding it all copied restarts it): the WAL grew by every commit, 650 MB in a 10-second bench,
every read slower for it, until the writers paused. So once a pass finds the WAL holding
RESTART_BYTES, the next write transaction of the process, holding the writers' lock, first runs
a RESTART checkpoint: it copies the few commits made meanwhile and waits (RESTART_WAIT at most)
for the WAL's readers to finish, and its commit then writes the WAL from its start. (A restart
after every pass was eight a second under load, each a stall of 3 to 5 ms for every writer; at
32 MB, two, with the WAL at most about 48 MB.) The thread could not take the writers' lock for
that itself: a lock that is not fair left it waiting behind busy writers (40 ms, with the WAL
growing).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.backends.sqlite3 import base
from django.db.backends.sqlite3.operations import DatabaseOperations as SQLiteOperations
from django.db.backends.sqlite3.schema import DatabaseSchemaEditor as SQLiteSchemaEditor

log = logging.getLogger("durable.sqlite")

# Commits of one connection between two checkpoints it asks for: about 16 MB of WAL at a
# journal's 60-odd KB per commit (SQLite's automatic threshold was 1,000 pages, ours 10,000).
CHECKPOINT_EVERY = 256
# How long the RESTART checkpoint waits for the WAL's readers (their statements last a fraction
# of a millisecond), holding the writers' lock; a reader that takes longer leaves it for the next.
RESTART_WAIT = 0.02
# The WAL's size from which a PASSIVE checkpoint asks for the RESTART one (under the writers'
# lock: 3 to 5 ms on this machine, two fsyncs, every writer of the machine waiting, a burst's
# timers among them). A restart after every pass was one per CHECKPOINT_EVERY commits of the
# machine (59 for 3,000 executions in one process, against 14 at this size).
RESTART_BYTES = 32 * 1024 * 1024


# Whether this process's write transactions are background work (a worker's: set_background).
_background = False


def set_background(on: bool = True) -> None:
    """Mark this process's write transactions as background work (the engine's workers call it
    as they start): each first queues among the background writers of the machine on
    `<database>-workers.lock`, then takes the writers' lock. So at most one background writer
    at a time waits for the writers' lock beside the processes that serve requests, and a
    request's write (an execution's start, a callback's completion) waits for the transaction
    under way and at most one worker's, not for every worker's in turn: `flock` lets go to
    whichever waiter runs first, and with four workers on two cores the process starting
    executions waited 0.65 ms a start for the lock and the CPU, against 0.05 ms with one
    worker (README, "Against DBOS")."""
    global _background
    _background = on


def _unlock(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)


def _lock_file(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextlib.contextmanager
def _checkpointing(fd: int) -> Iterator[bool]:
    """Whether this is the only checkpoint of the file running on the machine (the others' are
    skipped rather than waited for: two at a time copy the same pages, and a RESTART waiting
    for a PASSIVE would hold the writers' lock meanwhile)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        yield False
        return
    try:
        yield True
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


class Checkpointer(threading.Thread):
    """A process's checkpoints of one database file, run when asked, one at a time."""

    def __init__(self, path: str) -> None:
        super().__init__(name="durable-sqlite-checkpoints", daemon=True)
        self.path = path
        self.asked = threading.Event()
        self.done = 0  # PASSIVE checkpoints run (for tests and curious operators)
        self.restart_wanted = False  # the next writer of the process runs the RESTART one
        self.restarts = 0  # RESTART checkpoints after which the next commit wrote the WAL from its start

    def run(self) -> None:
        connection: sqlite3.Connection | None = None
        page_size: int | None = None
        running = _lock_file(f"{self.path}-checkpoint.lock")
        waited = False
        while True:
            self.asked.wait()
            self.asked.clear()
            if self.restart_wanted and not waited:
                # The last one's RESTART has not run yet (a writer found a checkpoint running
                # elsewhere): the next writer runs it, unless this pass holds it off again.
                waited = True
                continue
            waited = False
            try:
                if connection is None:
                    connection = sqlite3.connect(self.path, check_same_thread=False)
                with _checkpointing(running) as alone:
                    if alone:
                        ((_, frames, _),) = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        self.done += 1
                        if page_size is None:
                            ((page_size,),) = connection.execute("PRAGMA page_size").fetchall()
                        self.restart_wanted = frames * page_size >= RESTART_BYTES
            except sqlite3.Error:
                log.warning("checkpoint of %s failed; the next one copies what it left", self.path, exc_info=True)
                if connection is not None:
                    with contextlib.suppress(sqlite3.Error):
                        connection.close()
                connection = None


_checkpointers: dict[str, Checkpointer] = {}
_checkpointers_lock = threading.Lock()


def checkpointer(path: str) -> Checkpointer:
    with _checkpointers_lock:
        found = _checkpointers.get(path)
        if found is None or not found.is_alive():
            found = _checkpointers[path] = Checkpointer(path)
            found.start()
        return found


def _forget_checkpointers() -> None:
    """A forked child starts its own thread when it needs one (the parent's is not in it)."""
    global _checkpointers_lock
    _checkpointers.clear()
    _checkpointers_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_checkpointers)


class DatabaseOperations(SQLiteOperations):
    def adapt_datetimefield_value(self, value: Any) -> Any:
        """Django's, with the engine's case first: an aware datetime in UTC, written to a
        connection whose zone is UTC (USE_TZ, no TIME_ZONE of the database's) is its naive UTC
        text at once. Django's general path (an expression check, an `is_aware` call, the
        settings, a time-zone conversion) cost about twenty microseconds per invocation."""
        if value.__class__ is datetime and value.tzinfo is UTC and settings.USE_TZ and self.connection.timezone is UTC:
            return str(value.replace(tzinfo=None))
        return super().adapt_datetimefield_value(value)

    def adapt_json_value(self, value: Any, encoder: Any) -> Any:
        """Django's (`json.dumps(value, cls=encoder)`), with one encoder made per class: given a
        class, json.dumps makes an encoder per call, and every history event written is one."""
        if encoder is None:
            return json.dumps(value)
        made = _encoders.get(encoder)
        if made is None:
            made = _encoders[encoder] = encoder()  # json.dumps's own arguments are its defaults
        return made.encode(value)


# JSON encoders by class (their `encode` keeps no state between calls: safe to share).
_encoders: dict[type, json.JSONEncoder] = {}


# The journal's tables whose integer keys only order rows (an execution's operations and
# history, an event's deliveries): made without AUTOINCREMENT (DatabaseSchemaEditor).
ROWID_TABLES = frozenset({"durable_operation", "durable_historyevent", "durable_eventdelivery"})


class DatabaseSchemaEditor(SQLiteSchemaEditor):
    """Django's, except that the tables in ROWID_TABLES get a plain `INTEGER PRIMARY KEY` (the
    rowid) where Django writes `AUTOINCREMENT`. With it, SQLite reads and rewrites the table's row
    in `sqlite_sequence` at every INSERT statement, and each write transaction of the journal wrote
    that table's page to the WAL besides its own (a step's flush: 11 pages instead of 10; 8 us
    a transaction of three inserts on this machine). What AUTOINCREMENT adds is that a key is
    never used twice: without it, a new row gets the largest key in the table plus one, so the
    key of the newest row, once deleted, is given again. These tables' keys order the rows of
    one execution (or event) and every new key is still larger than every key left in the
    table, so that order holds. A table made before keeps AUTOINCREMENT (SQLite cannot drop it
    but by making the table again)."""

    def table_sql(self, model: Any) -> tuple[str, list[Any]]:
        sql, params = super().table_sql(model)
        # The sqlite schema editor makes a table again as "new__<table>" and renames it.
        if model._meta.db_table.removeprefix("new__") in ROWID_TABLES:
            marker = " PRIMARY KEY AUTOINCREMENT"
            if sql.count(marker) != 1:
                raise ValueError(f"{model._meta.db_table}: no single AUTOINCREMENT key in {sql!r}")
            sql = sql.replace(marker, " PRIMARY KEY")
        return sql, params


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    SchemaEditorClass = DatabaseSchemaEditor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writers_fd: int | None = None
        self._holding_writers_lock = False
        self._gate_fd: int | None = None  # <database>-workers.lock, opened by a background writer
        self._holding_gate = False
        self.background: bool | None = None  # a background writer (set_background), unless set here
        self._commits = 0
        self._path = ""  # the database file's, set at each connection (a test's database is named later)
        self._checkpoint_fd: int | None = None

    def create_cursor(self, name: str | None = None) -> Any:
        return self.connection.cursor(factory=CursorWrapper)

    def journal_cursor(self) -> Any:
        """A cursor for the engine's own statements (`durable.store.sql.cursor`): Django's, less
        its layers (the health check and wrappers of each cursor made, the wrappers around each
        statement), which ran inside the writers' lock on every journal write; the same
        placeholders, errors and thread and transaction checks. With DEBUG on (`queries_logged`),
        Django's, so the query log still shows the journal's statements."""
        if self.queries_logged:
            return self.cursor()
        if self.connection is None:
            self.ensure_connection()
        return JournalCursor(self)

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        self._path = os.fspath(self.settings_dict["NAME"])
        if not self.is_in_memory_db():
            try:
                path = f"{os.fspath(self.settings_dict['NAME'])}-writers.lock"
                self._writers_fd = _lock_file(path)
            except OSError:
                self._writers_fd = None  # a read-only directory: SQLite's busy handler alone
        return connection

    def _start_transaction_under_autocommit(self) -> None:
        self._take_writers_lock()
        try:
            checkpoints = _checkpointers.get(self._path) if self._holding_writers_lock else None
            if checkpoints is not None and checkpoints.restart_wanted:
                checkpoints.restart_wanted = False
                self._restart_wal(checkpoints)
            if self.queries_logged:  # Django's path, which logs the BEGIN as a query
                super()._start_transaction_under_autocommit()  # type: ignore[misc]
            else:
                # Django's BEGIN, straight on the connection (which set_autocommit has just
                # ensured): its cursor, wrappers and health check cost more than the statement,
                # once per write transaction (about 10 us of 40 for an empty atomic block).
                mode = self.transaction_mode  # type: ignore[attr-defined]
                with self.wrap_database_errors:
                    self.connection.execute("BEGIN" if mode is None else f"BEGIN {mode}")
        except BaseException:
            self._let_go_writers_lock()
            raise

    def _restart_wal(self, checkpoints: Checkpointer) -> None:
        """The RESTART checkpoint, before a transaction, holding the writers' lock: what the
        PASSIVE one left (the commits made while it ran), then the WAL reset once its readers are
        done, RESTART_WAIT at most; a reader that takes longer leaves it for the next time, and
        a checkpoint running elsewhere for the next transaction."""
        raw = self.connection
        try:
            if self._checkpoint_fd is None:
                self._checkpoint_fd = _lock_file(f"{self._path}-checkpoint.lock")
            with _checkpointing(self._checkpoint_fd) as alone:
                if not alone:
                    checkpoints.restart_wanted = True
                    return
                (timeout,) = raw.execute("PRAGMA busy_timeout").fetchone()
                raw.execute(f"PRAGMA busy_timeout={int(RESTART_WAIT * 1000)}")
                try:
                    (busy, _, _), *_ = raw.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                finally:
                    raw.execute(f"PRAGMA busy_timeout={int(timeout)}")
            checkpoints.restarts += not busy
        except (sqlite3.Error, OSError):
            log.warning("checkpoint of %s failed; the next one copies what it left", self._path, exc_info=True)

    def _commit(self) -> None:
        try:
            if self.queries_logged or self.connection is None:
                super()._commit()  # type: ignore[misc]
            else:
                with self.wrap_database_errors:  # Django's, less its timing for the query log
                    self.connection.commit()
        finally:
            self._let_go_writers_lock()
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0 and self._writers_fd is not None:
            checkpointer(self._path).asked.set()

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]
        finally:
            self._let_go_writers_lock()

    def _close(self) -> None:
        try:
            super()._close()  # type: ignore[misc]
        finally:
            self._let_go_writers_lock()
            for fd in (self._writers_fd, self._checkpoint_fd, self._gate_fd):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._writers_fd = self._checkpoint_fd = self._gate_fd = None

    def _take_writers_lock(self) -> None:
        if self._writers_fd is None or self._holding_writers_lock:
            return
        if _background if self.background is None else self.background:
            self._take_gate()
        try:
            fcntl.flock(self._writers_fd, fcntl.LOCK_EX)  # the GIL is released while waiting
        except OSError:
            self._let_go_gate()
            return  # SQLite's own lock decides alone
        self._holding_writers_lock = True

    def _take_gate(self) -> None:
        """The background writers' turn (set_background); none if its file cannot be had."""
        try:
            if self._gate_fd is None:
                self._gate_fd = _lock_file(f"{self._path}-workers.lock")
            fcntl.flock(self._gate_fd, fcntl.LOCK_EX)
        except OSError:
            return
        self._holding_gate = True

    def _let_go_gate(self) -> None:
        if self._holding_gate:
            self._holding_gate = False
            _unlock(self._gate_fd)

    def _let_go_writers_lock(self) -> None:
        if self._holding_writers_lock:
            self._holding_writers_lock = False
            _unlock(self._writers_fd)
        self._let_go_gate()  # after the writers' lock: a request's writer waiting for it goes first


@functools.lru_cache(maxsize=1024)
def _qmark(query: str) -> str:
    return str(base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%"))


class CursorWrapper(base.SQLiteCursorWrapper):
    """Django's cursor, remembering each statement's translation to SQLite's placeholders: the
    regular expression cost more per statement than SQLite's work on a journal write (the
    engine runs the same few statements over and over)."""

    def convert_query(self, query: str, *, param_names: list[str] | None = None) -> str:
        if param_names is None:
            return _qmark(query)
        return str(super().convert_query(query, param_names=param_names))


class JournalCursor:
    """`DatabaseWrapper.journal_cursor`'s: SQLite's cursor (ours, see CursorWrapper) with
    Django's error translation and its thread and transaction checks, nothing else; a context
    manager that closes it."""

    __slots__ = ("_cursor", "_errors")

    def __init__(self, db: DatabaseWrapper) -> None:
        db.validate_thread_sharing()
        db.validate_no_broken_transaction()
        self._errors = db.wrap_database_errors
        self._cursor = db.connection.cursor(factory=CursorWrapper)

    def execute(self, query: str, params: Any = None) -> Any:
        with self._errors:
            return self._cursor.execute(query, params)

    def executemany(self, query: str, params: Any) -> Any:
        with self._errors:
            return self._cursor.executemany(query, params)

    def fetchone(self) -> Any:
        with self._errors:
            return self._cursor.fetchone()

    def fetchall(self) -> Any:
        with self._errors:
            return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def close(self) -> None:
        self._cursor.close()

    def __enter__(self) -> JournalCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
