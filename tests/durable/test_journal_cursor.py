"""The journal's statements on SQLite run on a lean cursor (`DatabaseWrapper.journal_cursor`):
SQLite's own with Django's placeholders and error translation, without Django's layers around
each cursor and statement (they ran inside the writers' lock on every journal write). With
DEBUG's query log on, Django's cursor, so the log still shows them."""

from __future__ import annotations

import threading

import pytest
from django.db import DatabaseError, IntegrityError, OperationalError
from django.db.transaction import TransactionManagementError

from durable.backends.sqlite3 import base
from tests.durable.test_sqlite_checkpoints import begin, end, engine_sqlite  # noqa: F401 (a fixture)


@pytest.fixture
def journal_db(engine_sqlite):  # noqa: F811 (the fixture imported above)
    """Our backend on a file of its own (whatever database the tests run on), with a table of keys."""
    with engine_sqlite.cursor() as cursor:
        cursor.execute("CREATE TABLE j (k TEXT UNIQUE, v INTEGER)")
    return engine_sqlite


def test_the_journal_cursor_runs_djangos_statements_and_raises_djangos_errors(journal_db):
    begin(journal_db)
    with journal_db.journal_cursor() as cursor:
        assert isinstance(cursor, base.JournalCursor)
        cursor.execute("INSERT INTO j (k, v) VALUES (%s, %s)", ["a", 1])
        cursor.executemany("INSERT INTO j (k, v) VALUES (%s, %s)", [["b", 2], ["c", 3]])
        cursor.execute("UPDATE j SET v = v + %s WHERE k IN (%s, %s)", [10, "a", "b"])
        assert cursor.rowcount == 2
        cursor.execute("SELECT k, v FROM j WHERE v > %s ORDER BY k", [1])
        assert cursor.fetchone() == ("a", 11)
        assert cursor.fetchall() == [("b", 12), ("c", 3)]
        with pytest.raises(IntegrityError):  # Django's, as a statement on Django's cursor raises
            cursor.execute("INSERT INTO j (k, v) VALUES (%s, %s)", ["a", 4])
        with pytest.raises(OperationalError):
            cursor.execute("SELECT nothing FROM nowhere")
    end(journal_db)
    with journal_db.cursor() as cursor:
        cursor.execute("SELECT count(*), sum(v) FROM j")
        assert cursor.fetchone() == (3, 26)
    # The writers' lock was let go at the commit: another transaction takes it.
    begin(journal_db)
    with journal_db.journal_cursor() as cursor:
        cursor.execute("DELETE FROM j WHERE k = %s", ["c"])
        assert cursor.rowcount == 1
    end(journal_db)
    assert not journal_db._holding_writers_lock


def test_a_broken_transaction_refuses_the_journal_cursor_as_djangos(journal_db):
    begin(journal_db)
    journal_db.in_atomic_block = True
    journal_db.needs_rollback = True  # what an error caught inside atomic() leaves
    try:
        with pytest.raises(TransactionManagementError):
            journal_db.journal_cursor()
        with pytest.raises(TransactionManagementError):
            journal_db.cursor().execute("SELECT 1")
    finally:
        journal_db.needs_rollback = False
        journal_db.in_atomic_block = False
        journal_db.rollback()
        journal_db.set_autocommit(True)


def test_the_journal_cursor_refuses_another_threads_connection_as_djangos(journal_db):
    raised = []

    def other() -> None:
        try:
            journal_db.journal_cursor()
        except DatabaseError as exc:  # Django's "objects created in a thread can only be used in that same thread"
            raised.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(10)
    assert raised
    assert "same thread" in str(raised[0])


def test_a_logged_connection_gets_djangos_cursor_and_logs_the_statements(journal_db):
    journal_db.force_debug_cursor = True
    try:
        with journal_db.journal_cursor() as cursor:
            assert not isinstance(cursor, base.JournalCursor)
            cursor.execute("INSERT INTO j (k, v) VALUES (%s, %s)", ["logged", 1])
        assert "INSERT INTO j (k, v) VALUES ('logged', 1)" in [q["sql"] for q in journal_db.queries]
    finally:
        journal_db.force_debug_cursor = False
    with journal_db.journal_cursor() as cursor:
        assert isinstance(cursor, base.JournalCursor)
