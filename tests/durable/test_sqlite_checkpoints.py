"""SQLite's WAL is checkpointed by a thread of each process, never inside a commit (where every
other writer on the machine would wait for its fsyncs behind the writers' lock): SQLite's own
checkpoints are off, and the WAL stays as small as SQLite's would have kept it."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db.utils import ConnectionHandler

from durable.backends.sqlite3 import PAGE_SIZE, base, database

ROW = b"x" * 8000  # two pages and more per commit


@pytest.fixture
def engine_sqlite(tmp_path: Path, django_db_blocker):
    """Our backend on a file of its own (whatever database the tests run on)."""
    handler = ConnectionHandler({"default": database(str(tmp_path / "journal.sqlite3"))})
    connection = handler["default"]
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE t (v BLOB)")
        yield connection
        connection.close()


def begin(connection) -> None:
    """A write transaction's start, as Django's outermost atomic block starts one."""
    connection.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)


def end(connection) -> None:
    connection.commit()
    connection.set_autocommit(True)


def commit_rows(connection, count: int, *, then=None) -> None:
    """`count` write transactions as Django runs them (BEGIN IMMEDIATE ... COMMIT)."""
    for n in range(1, count + 1):
        begin(connection)
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO t VALUES (%s)", [ROW])
        end(connection)
        if then:
            then(n)


def wal_bytes(connection) -> int:
    return os.path.getsize(f"{connection.settings_dict['NAME']}-wal")


def test_sqlites_own_checkpoints_are_off(engine_sqlite):
    with engine_sqlite.cursor() as cursor:
        assert cursor.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        assert cursor.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_new_database_gets_small_pages_and_one_that_exists_keeps_its_own(engine_sqlite, tmp_path, django_db_blocker):
    # Each commit writes every page it touched to the WAL whole: smaller pages, fewer bytes.
    with engine_sqlite.cursor() as cursor:
        assert cursor.execute("PRAGMA page_size").fetchone() == (PAGE_SIZE,)
        assert PAGE_SIZE < 4096
    made_before = tmp_path / "made-before.sqlite3"
    raw = sqlite3.connect(made_before)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("CREATE TABLE t (v)")
    raw.execute("INSERT INTO t VALUES (1)")
    raw.commit()
    raw.close()
    connection = ConnectionHandler({"default": database(str(made_before))})["default"]
    with django_db_blocker.unblock():
        try:
            with connection.cursor() as cursor:
                assert cursor.execute("PRAGMA page_size").fetchone() == (4096,)
                cursor.execute("INSERT INTO t VALUES (2)")
                assert cursor.execute("SELECT count(*) FROM t").fetchone() == (2,)
        finally:
            connection.close()


def test_every_n_commits_a_thread_checkpoints_and_the_wal_stays_small(engine_sqlite, monkeypatch):
    monkeypatch.setattr(base, "CHECKPOINT_EVERY", 20)
    monkeypatch.setattr(base, "RESTART_BYTES", 0)  # a restart after every pass
    path = str(engine_sqlite.settings_dict["NAME"])

    def after(n: int) -> None:
        if n % 20 == 0:  # the thread's checkpoint done before the next commit (which restarts the WAL)
            deadline = time.monotonic() + 10
            while base.checkpointer(path).done < n // 20:  # bounded by the deadline
                assert time.monotonic() < deadline, "no checkpoint was run"
                time.sleep(0.01)

    commit_rows(engine_sqlite, 200, then=after)
    assert base.checkpointer(path).done == 10
    checkpointed = wal_bytes(engine_sqlite)
    assert checkpointed < 60 * len(ROW)  # about a batch (20 commits), reused from its start
    # The same commits with no checkpoint: the WAL holds them all.
    monkeypatch.setattr(base, "CHECKPOINT_EVERY", 10**9)
    commit_rows(engine_sqlite, 200)
    assert wal_bytes(engine_sqlite) > 200 * len(ROW) > checkpointed
    with engine_sqlite.cursor() as cursor:
        assert cursor.execute("SELECT count(*) FROM t").fetchone() == (400,)


@pytest.mark.parametrize("restart_bytes", [0, 4 * 1024 * 1024])
def test_under_writes_that_never_pause_the_wal_still_restarts_from_its_start(
    tmp_path, django_db_blocker, monkeypatch, request, restart_bytes
):
    """Two writers committing back to back, never waiting for the checkpoint thread. A PASSIVE
    checkpoint alone copied the WAL but never let it restart (a commit always came between its
    end and the next writer), so the WAL grew by every commit; the RESTART pass, run under the
    writers' lock, brings it back to its start, once the WAL holds RESTART_BYTES (0: after
    every pass). Each RESTART holds the writers' lock for its fsyncs, so they are asked for by
    the WAL's size: more processes writing, each with its passes, do not make more of them."""
    monkeypatch.setattr(base, "CHECKPOINT_EVERY", 100)
    monkeypatch.setattr(base, "RESTART_BYTES", restart_bytes)
    # As in a worker (its timer thread sets it): the checkpoint thread waits less for the GIL
    # that the two writing threads pass between them.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    request.addfinalizer(lambda: sys.setswitchinterval(switch))
    handler = ConnectionHandler({"default": database(str(tmp_path / "journal.sqlite3"))})
    commits = 3000
    with django_db_blocker.unblock():
        with handler["default"].cursor() as cursor:
            cursor.execute("CREATE TABLE t (v BLOB)")

        def other_writer() -> None:
            commit_rows(handler["default"], commits)  # its own connection (one per thread)
            handler["default"].close()

        other = threading.Thread(target=other_writer)
        other.start()
        commit_rows(handler["default"], commits)
        other.join(60)
        assert not other.is_alive()
        path = str(handler["default"].settings_dict["NAME"])
        checkpoints = base.checkpointer(path)
        assert checkpoints.restarts > 0
        if restart_bytes:  # a pass copies about a megabyte here: one restart per four passes or so
            assert checkpoints.restarts * 2 <= checkpoints.done
        # Without a restart it holds every commit (two pages and more each, 100 MB); with them, a
        # few batches' (4 to 7 MB here; 21 MB once, when the checkpoint thread waited long for
        # the GIL the two writers pass between them: the file keeps the largest extent reached).
        assert wal_bytes(handler["default"]) < 2 * commits * len(ROW) / 2
        with handler["default"].cursor() as cursor:
            assert cursor.execute("SELECT count(*) FROM t").fetchone() == (2 * commits,)
        handler["default"].close()


def test_a_long_reader_delays_the_restart_not_the_writers(engine_sqlite, monkeypatch):
    """A read transaction left open keeps the WAL from restarting: the RESTART pass gives up after
    RESTART_WAIT (the writers go on meanwhile), and the first pass after it ends restarts it; the
    first commit after that cuts the file back to `journal_size_limit` (ours is 64 MB)."""
    monkeypatch.setattr(base, "CHECKPOINT_EVERY", 20)
    monkeypatch.setattr(base, "RESTART_BYTES", 0)
    path = str(engine_sqlite.settings_dict["NAME"])
    with engine_sqlite.cursor() as cursor:
        assert cursor.execute("PRAGMA journal_size_limit").fetchone() == (64 * 1024 * 1024,)
        cursor.execute("PRAGMA journal_size_limit=200000")  # small enough to see the cut here
    checkpoints = base.checkpointer(path)

    def batch() -> None:
        """CHECKPOINT_EVERY commits, then the pass they asked for."""
        done = checkpoints.done
        commit_rows(engine_sqlite, 20)
        deadline = time.monotonic() + 10
        while checkpoints.done == done:  # bounded by the deadline
            assert time.monotonic() < deadline, "no checkpoint was run"
            time.sleep(0.01)

    batch()
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # holds its snapshot of the WAL
    for _ in range(5):
        batch()
    assert (checkpoints.done, checkpoints.restarts) == (6, 1)  # the reader held back every later one
    grown = wal_bytes(engine_sqlite)
    assert grown > 100 * len(ROW)
    reader.execute("COMMIT")
    reader.close()
    batch()
    assert (checkpoints.done, checkpoints.restarts) == (7, 2)
    commit_rows(engine_sqlite, 1)  # from the WAL's start, cutting the file
    assert wal_bytes(engine_sqlite) <= 200000 < grown


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_starts_its_own_checkpoint_thread(engine_sqlite, monkeypatch):
    monkeypatch.setattr(base, "CHECKPOINT_EVERY", 1)
    path = str(engine_sqlite.settings_dict["NAME"])
    commit_rows(engine_sqlite, 1)
    parents = base.checkpointer(path)
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread is not here; a new one is started on demand
        ok = not base._checkpointers and base.checkpointer(path) is not parents
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_write_transaction_begins_immediate_and_fails_as_djangos_would(engine_sqlite):
    """The backend sends BEGIN and COMMIT on the connection itself (not through a Django cursor):
    the transaction still holds SQLite's write lock from its BEGIN, a BEGIN that cannot take it
    raises Django's OperationalError, and the writers' lock is let go either way."""
    import fcntl

    from django.db import OperationalError

    path = engine_sqlite.settings_dict["NAME"]
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    begin(engine_sqlite)
    # Another connection cannot write while this one's transaction is open, before it wrote.
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    end(engine_sqlite)
    other.execute("BEGIN IMMEDIATE")  # free once it committed
    try:
        with engine_sqlite.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout=0")
        with pytest.raises(OperationalError, match="locked"):
            begin(engine_sqlite)
    finally:
        other.execute("ROLLBACK")
        engine_sqlite.set_autocommit(True)
        with engine_sqlite.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout=30000")
    lock = os.open(f"{path}-writers.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the writers' lock was let go
        fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        os.close(lock)
    begin(engine_sqlite)
    with engine_sqlite.cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (%s)", [b"after"])
    end(engine_sqlite)
    assert other.execute("SELECT count(*) FROM t").fetchone() == (1,)
    other.close()


def test_a_logged_connection_shows_the_transactions_statements(engine_sqlite, settings):
    settings.DEBUG = True  # Django's query log, as with DEBUG on
    engine_sqlite.queries_log.clear()
    begin(engine_sqlite)
    with engine_sqlite.cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (%s)", [b"logged"])
    end(engine_sqlite)
    assert [q["sql"].split()[0] for q in engine_sqlite.queries] == ["BEGIN", "INSERT", "COMMIT"]
