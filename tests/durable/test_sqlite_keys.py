"""On SQLite the journal's tables whose integer keys only order rows are made without
AUTOINCREMENT (durable.backends.sqlite3.base.DatabaseSchemaEditor): no `sqlite_sequence` row read
and written at every INSERT, no page of it in every write transaction's WAL frames. Their rows
keep their order when the newest ones are deleted and their keys given again."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.apps.registry import Apps
from django.db import models
from django.db.utils import ConnectionHandler

from durable.backends.sqlite3 import base, database
from durable.models import EventDelivery, Execution, HistoryEvent, Operation, OutboxEvent

JOURNAL_MODELS = (Execution, Operation, HistoryEvent, OutboxEvent, EventDelivery)


@pytest.fixture
def journal_sqlite(tmp_path: Path, django_db_blocker):
    """The journal's tables made by our backend's schema editor on a file of their own
    (whatever database the tests run on)."""
    connection = ConnectionHandler({"default": database(str(tmp_path / "journal.sqlite3"))})["default"]
    with django_db_blocker.unblock():
        with connection.schema_editor() as editor:
            for model in JOURNAL_MODELS:
                editor.create_model(model)
        yield connection
        connection.close()


def table_sql(connection, table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = %s", [table])
        return cursor.fetchone()[0]


def test_the_tables_whose_keys_only_order_rows_have_no_autoincrement(journal_sqlite):
    assert {m._meta.db_table for m in (Operation, HistoryEvent, EventDelivery)} == base.ROWID_TABLES
    for table in base.ROWID_TABLES:
        sql = table_sql(journal_sqlite, table)
        assert '"id" integer NOT NULL PRIMARY KEY,' in sql, sql
        assert "AUTOINCREMENT" not in sql


def test_inserting_journal_rows_writes_nothing_to_sqlite_sequence(journal_sqlite):
    execution_id = "0" * 31 + "1"
    with journal_sqlite.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys = OFF")  # history rows alone, no execution row
        for _ in range(3):
            cursor.execute(
                "INSERT INTO durable_historyevent (execution_id, event_type, timestamp, details) "
                "VALUES (%s, 'StepStarted', '2026-01-01', '{}')",
                [execution_id],
            )
        # sqlite_sequence exists once any table of the file has AUTOINCREMENT; none has here.
        cursor.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'")
        assert cursor.fetchone() == (0,)
        cursor.execute("SELECT id FROM durable_historyevent ORDER BY id")
        assert [r[0] for r in cursor.fetchall()] == [1, 2, 3]


def test_keys_given_again_after_the_newest_rows_are_deleted_still_order_each_execution(journal_sqlite):
    """Without AUTOINCREMENT the deleted newest keys are given again (to another execution's
    rows here), and each execution's history still reads in the order it was written: a new key is
    larger than every key left in the table."""
    first, second = "0" * 31 + "1", "0" * 31 + "2"
    with journal_sqlite.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys = OFF")  # history rows alone, no execution rows

        def event(execution_id: str, name: str) -> None:
            cursor.execute(
                "INSERT INTO durable_historyevent (execution_id, event_type, name, timestamp, details) "
                "VALUES (%s, 'StepStarted', %s, '2026-01-01', '{}')",
                [execution_id, name],
            )

        event(first, "a")
        event(first, "b")
        event(second, "x")
        event(second, "y")  # keys 3 and 4: the newest
        cursor.execute("DELETE FROM durable_historyevent WHERE execution_id = %s", [second])  # a purge
        event(first, "c")
        cursor.execute("SELECT id FROM durable_historyevent WHERE name = 'c'")
        assert cursor.fetchone() == (3,)  # given again: what AUTOINCREMENT would have prevented
        cursor.execute("SELECT name FROM durable_historyevent WHERE execution_id = %s ORDER BY id", [first])
        assert [r[0] for r in cursor.fetchall()] == ["a", "b", "c"]


def test_a_table_made_again_by_a_migration_stays_without_autoincrement(journal_sqlite):
    """SQLite's schema editor alters a table by making "new__<table>" and renaming it."""
    registry = Apps()

    def model(table: str) -> type[models.Model]:
        meta = type("Meta", (), {"app_label": "durable", "db_table": table, "apps": registry})
        body = {"id": models.BigAutoField(primary_key=True), "n": models.IntegerField(), "Meta": meta}
        return type(f"M{len(registry.all_models['durable'])}", (models.Model,), {"__module__": __name__, **body})

    editor = base.DatabaseSchemaEditor(journal_sqlite)
    remade, _ = editor.table_sql(model("new__durable_historyevent"))
    assert "AUTOINCREMENT" not in remade
    other, _ = editor.table_sql(model("new__django_admin_log"))
    assert '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT' in other  # every other table keeps Django's
