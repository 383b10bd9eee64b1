"""Django's SQLite backend, with writers that queue instead of sleeping.

SQLite lets one writer in at a time. A writer that finds the lock taken is put to sleep by
SQLite's busy handler for 1, 2, 5, 10, ... ms before it looks again, while a journal's write
transactions last about a tenth of a millisecond: with a few processes writing, most of their
time went to those sleeps (measured in bench/workers.py: two workers did no more than one).

Here every write transaction first takes an exclusive `flock` on a file beside the database,
polled at a fine grain (from a yield up to 1 ms), and lets it go at commit or rollback, so
writers from any process on the machine take turns within microseconds. The flock only
schedules: SQLite's own lock still guards the data, so a process that skips it (another
program, the sqlite3 shell), a lock file that cannot be opened, or a wait past the connection's
timeout all fall back to SQLite's busy handler, never to a lost write. Readers take no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from typing import Any

from django.db.backends.sqlite3 import base

# Pauses between attempts at the writers' lock: a yield first, then doubling up to a millisecond.
_PAUSES = (0.0, 0.00005, 0.0001, 0.0002, 0.0004, 0.0008)
_LONGEST_PAUSE = 0.001


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writers_fd: int | None = None
        self._holding_writers_lock = False

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        self._lock_wait = float(conn_params.get("timeout", 5.0))
        if not self.is_in_memory_db():
            try:
                path = f"{os.fspath(self.settings_dict['NAME'])}-writers.lock"
                self._writers_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                self._writers_fd = None  # read-only directory: SQLite's busy handler alone
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
        fd = self._writers_fd
        if fd is None or self._holding_writers_lock:
            return
        deadline = time.monotonic() + self._lock_wait
        attempt = 0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return  # leave it to SQLite's busy handler and timeout
                time.sleep(_PAUSES[attempt] if attempt < len(_PAUSES) else _LONGEST_PAUSE)
                attempt += 1
            except OSError:
                return
            else:
                self._holding_writers_lock = True
                return

    def _let_go_writers_lock(self) -> None:
        if self._holding_writers_lock:
            self._holding_writers_lock = False
            if self._writers_fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._writers_fd, fcntl.LOCK_UN)
