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
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
from typing import Any

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writers_fd: int | None = None
        self._holding_writers_lock = False

    def create_cursor(self, name: str | None = None) -> Any:
        return self.connection.cursor(factory=CursorWrapper)

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        if not self.is_in_memory_db():
            try:
                path = f"{os.fspath(self.settings_dict['NAME'])}-writers.lock"
                self._writers_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                self._writers_fd = None  # a read-only directory: SQLite's busy handler alone
        return connection

    def _start_transaction_under_autocommit(self) -> None:
        self._take_writers_lock()
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]
        except BaseException:
            self._let_go_writers_lock()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()  # type: ignore[misc]
        finally:
            self._let_go_writers_lock()

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
            if self._writers_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._writers_fd)
                self._writers_fd = None

    def _take_writers_lock(self) -> None:
        if self._writers_fd is None or self._holding_writers_lock:
            return
        try:
            fcntl.flock(self._writers_fd, fcntl.LOCK_EX)  # the GIL is released while waiting
        except OSError:
            return  # SQLite's own lock decides alone
        self._holding_writers_lock = True

    def _let_go_writers_lock(self) -> None:
        if self._holding_writers_lock:
            self._holding_writers_lock = False
            if self._writers_fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._writers_fd, fcntl.LOCK_UN)


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
