"""SQLite for a journal: `DATABASES["default"] = database(path)` configures this backend.

A journal takes many small writes: WAL lets readers run beside the writer, NORMAL syncs at
checkpoints rather than every commit, IMMEDIATE takes the write lock at BEGIN (no deadlocking
upgrade from a read lock), and writers wait rather than fail at once. The backend (`base`) adds
a queue for writers across processes, and runs checkpoints (WAL pages copied into the database,
with two fsyncs) from a thread of each process rather than inside a commit, so SQLite's own are
off (`wal_autocheckpoint=0`; see the README's benchmark notes). A WAL that grew while a long
reader held it back is cut to 64 MB when it next restarts (`journal_size_limit`).

A new database gets pages of PAGE_SIZE bytes rather than SQLite's 4,096: a commit writes
every page it touched to the WAL whole, and a journal's commit touches about fifteen (the
execution's row and its indexes, the operation's, the history's), so the pages' size is most
of the WAL's bytes and of the checkpoints' copying. With 2,048-byte pages a 3-step execution
wrote 135 KB of WAL instead of 241, and a worker ran 9 to 13% more executions per second;
1,024-byte ones wrote 84 KB but made the database 11% larger and the admin's text search (a
scan) 60% slower. A database that exists keeps its page size (SQLite changes it only by a
VACUUM outside WAL mode).
"""

from __future__ import annotations

from typing import Any

PAGE_SIZE = 2048


def database(name: str, *, test_name: str | None = None) -> dict[str, Any]:
    """The settings of a SQLite database file for the engine; `test_name` is the test database's
    file (a file, so that worker processes can share it)."""
    settings: dict[str, Any] = {
        "ENGINE": "durable.backends.sqlite3",
        "NAME": name,
        "OPTIONS": {
            "init_command": (
                # The page size first: SQLite fixes it when the file gets its first page.
                f"PRAGMA page_size={PAGE_SIZE}; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                "PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=67108864;"
            ),
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        },
    }
    if test_name:
        settings["TEST"] = {"NAME": test_name}
    return settings
