"""PostgreSQL runs the journal's statements prepared once per connection (durable/store/postgresql.py):
the PREPARE rides in the first query that needs it (no round trip more), statements that went
missing are prepared again, and a process that keeps losing them (a pooler in transaction mode)
stops preparing. On SQLite, which caches its compiled statements itself, nothing of this runs.

Not wrapped in a test transaction: the writes run as a worker's do."""

import logging
import os
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from durable.client import start_execution
from durable.exceptions import LeaseLostError
from durable.models import Execution, Operation
from durable.runtime import run_invocation
from durable.state import Checkpoint, OperationRecord, OperationStatus, OperationType
from durable.store import journal_store
from durable.store import postgresql as pg
from tests.durable.test_runtime import three_steps

pytestmark = pytest.mark.django_db(transaction=True)

POSTGRES = connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def fresh_session(monkeypatch):
    """A new server session (no statement prepared yet) and no losses counted before."""
    monkeypatch.setattr(pg, "_losses", 0)
    connection.close()
    yield
    connection.close()


def ours_prepared() -> dict[str, str]:
    """The durable_ statements prepared in this connection's session: name -> its statement."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, statement FROM pg_prepared_statements WHERE name LIKE 'durable%%'")
        return {name: statement.split(" AS ", 1)[1] for name, statement in cursor.fetchall()}


def run_three_steps() -> list[str]:
    execution = start_execution(three_steps, {})
    with CaptureQueriesContext(connection) as captured:
        assert run_invocation(str(execution.pk)).status == "SUCCEEDED"
    assert [op.result for op in Operation.objects.filter(execution_id=execution.pk).order_by("id")] == ["0", "1", "2"]
    return [q["sql"] for q in captured.captured_queries if q["sql"] not in ("BEGIN IMMEDIATE", "COMMIT")]


def test_statements_are_prepared_in_the_query_that_first_needs_them_then_executed():
    first, second = run_three_steps(), run_three_steps()
    assert len(first) == len(second)  # preparing costs no round trip
    if not POSTGRES:
        assert not any("EXECUTE durable_" in q or "PREPARE durable_" in q for q in first + second)
        return
    assert first[0].startswith("PREPARE durable_")  # the lease's, in the lease's own query
    assert any("PREPARE" in q for q in first[1:])  # the fence's, in the first write
    assert not any("PREPARE" in q for q in second), second  # then only EXECUTE
    assert all(q.startswith("EXECUTE durable_") for q in second), second
    prepared = ours_prepared()
    assert any("lease_owner" in text and text.lstrip().startswith("UPDATE") for text in prepared.values())
    assert any(text.startswith("WITH fenced AS (UPDATE") for text in prepared.values())
    # What a log or a test reads: the statements, without the prepared statements' names.
    readable = [pg.readable(q) for q in second]
    assert readable[0].startswith('UPDATE "durable_execution" SET "lease_token" = $1'), readable[0]
    assert all(q.startswith("WITH fenced AS (UPDATE") for q in readable[1:]), readable


def test_statements_gone_from_the_session_are_prepared_again():
    run_three_steps()
    if POSTGRES:
        with connection.cursor() as cursor:
            cursor.execute("DEALLOCATE ALL")  # as DISCARD ALL or a server restart's session would
        assert ours_prepared() == {}
    again = run_three_steps()
    if POSTGRES:
        assert pg._losses == 1  # the lease's query failed once, then ran with fresh statements
        assert ours_prepared(), "prepared anew"
        assert all(name.endswith("_1") for name in ours_prepared())  # names of the new generation
        assert not any("PREPARE" in q for q in run_three_steps())
    else:
        assert not any("EXECUTE" in q for q in again)


def test_a_lost_lease_writes_nothing_through_prepared_statements_and_the_next_write_still_runs():
    execution = start_execution(three_steps, {})
    execution_id = str(execution.pk)
    store = journal_store()
    now = execution.created_at
    stale = store.acquire_lease(execution_id, "a", now, 60)
    assert stale is not None
    record = OperationRecord("op-1", OperationType.STEP, "Step", "s", OperationStatus.SUCCEEDED, result="1")
    store.leased(execution_id, stale.token, lambda: now).write([Checkpoint(record, [])])  # prepares the fence
    from datetime import timedelta

    fresh = store.acquire_lease(execution_id, "b", now + timedelta(seconds=61), 60)
    assert fresh is not None
    late = OperationRecord("op-2", OperationType.STEP, "Step", "late", OperationStatus.SUCCEEDED, result="2")
    with pytest.raises(LeaseLostError):
        store.leased(execution_id, stale.token, lambda: now).write([Checkpoint(late, [])])
    assert not Operation.objects.filter(execution_id=execution_id, operation_id="op-2").exists()
    store.leased(execution_id, fresh.token, lambda: now).write([Checkpoint(late, [])])
    assert Operation.objects.get(execution_id=execution_id, operation_id="op-2").result == "2"
    assert Execution.objects.get(pk=execution_id).lease_token == fresh.token
    assert pg._losses == 0


def test_a_process_that_keeps_losing_its_statements_stops_preparing(caplog):
    """A pooler in transaction mode runs each transaction on any server session: a statement
    prepared in one is missing in the next. Simulated: every query that only EXECUTEs finds the
    session's statements gone."""

    def another_session(execute, sql, params, many, context):
        if "EXECUTE durable_" in sql and "PREPARE" not in sql:
            context["cursor"].execute("DEALLOCATE ALL")
        return execute(sql, params, many, context)

    run_three_steps()  # prepared
    with caplog.at_level(logging.WARNING, logger="durable.store"), connection.execute_wrapper(another_session):
        for _ in range(pg.MOST_LOSSES):
            run_three_steps()  # each run correct (run_three_steps checks its journal)
        if POSTGRES:
            assert pg._losses == pg.MOST_LOSSES
            assert not pg.preparing()
            after = run_three_steps()
            assert not any("EXECUTE durable_" in q or "PREPARE durable_" in q for q in after), after
    if POSTGRES:
        assert "unprepared from now on" in caplog.text
    else:
        assert pg._losses == 0


def test_the_setting_off_prepares_nothing(settings):
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "POSTGRES_PREPARED_STATEMENTS": False}
    queries = run_three_steps()
    assert not any("EXECUTE durable_" in q or "PREPARE durable_" in q for q in queries), queries
    if POSTGRES:
        assert ours_prepared() == {}


def test_the_generic_plans_of_the_lease_and_the_fences_go_by_the_primary_key():
    """A prepared statement's generic plan is made without its parameters' values. The lease's
    and the fences' once scanned an index that begins with the status (every RUNNING execution)
    instead of the key: at 100,000 waiting executions, a scan of them all per write."""
    run_three_steps()
    if not POSTGRES:
        from durable.store import sql

        assert '"status" = %s' in sql.statements().fence(())
        assert "IS TRUE" not in sql.statements().acquire
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, cardinality(parameter_types) FROM pg_prepared_statements "
            "WHERE name LIKE 'durable%%' AND statement LIKE '%%UPDATE \"durable_execution\"%%'"
        )
        updates = cursor.fetchall()
        plans = {}
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        try:
            for name, count in updates:
                cursor.execute(f"EXPLAIN EXECUTE {name}({', '.join(['NULL'] * count)})")
                plans[name] = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET plan_cache_mode")
    updating = {name: plan for name, plan in plans.items() if "Update on durable_execution" in plan}
    assert len(updating) >= 2, plans  # the lease and at least one fence
    for plan in updating.values():
        assert "Index Scan using durable_execution_pkey on durable_execution" in plan, plan
        assert "durable_exec_" not in plan, plan


def test_each_query_of_an_invocation_is_split_at_its_placeholders_once_whatever_its_parameters(monkeypatch):
    """psycopg keeps its split of a query only up to 50 parameters unless told otherwise (an
    invocation's end has more); SQLite's placeholders are translated by our backend, once."""
    from psycopg import _queries

    from durable.backends.sqlite3.base import _qmark

    run_invocation(str(start_execution(three_steps, {}).pk))  # every query's text seen once
    split_again: list[int] = []
    uncached = _queries._query2pg_client_nocache  # what psycopg calls for a query it does not cache

    def counted(query, encoding):
        split_again.append(query.count(b"%s"))
        return uncached(query, encoding)

    monkeypatch.setattr(_queries, "_query2pg_client_nocache", counted)
    sizes: list[int] = []

    def sized(execute, sql, params, many, context):
        sizes.append(len(params or ()))
        return execute(sql, params, many, context)

    translated = _qmark.cache_info().misses
    with connection.execute_wrapper(sized):
        outcome = run_invocation(str(start_execution(three_steps, {}).pk))
    assert outcome.status == "SUCCEEDED"
    if POSTGRES:
        assert max(sizes) > 50  # the end's query: more than psycopg's own bound
        assert split_again == []
    else:
        assert _qmark.cache_info().misses == translated
        assert split_again == []  # psycopg has no part in it


def renew() -> object:
    """A worker's renewal of the connection while it waits (past half its CONN_MAX_AGE)."""
    from durable.rq.jobs import renew_aging_connections

    old = connection.connection
    connection.close_at = time.monotonic() - 1
    renew_aging_connections()
    assert connection.connection is not None
    assert connection.connection is not old
    return old


def test_a_renewed_session_has_the_old_ones_statements_prepared_with_their_generic_plans():
    run_three_steps()
    before = ours_prepared() if POSTGRES else {}
    renew()
    if POSTGRES:
        assert before, "the first session prepared the invocation's statements"
        # The same names (each a digest of its statement's text), on the new session.
        assert set(ours_prepared()) == set(before)
        with connection.cursor() as cursor:
            cursor.execute("SELECT name, generic_plans FROM pg_prepared_statements WHERE name LIKE 'durable%%'")
            plans = dict(cursor.fetchall())
        assert all(count >= 1 for count in plans.values()), plans  # planned while the worker waited
    # The first invocation on the new session only executes them, and no statement went missing.
    after = run_three_steps()
    assert not any("PREPARE" in q for q in after), after
    assert pg._losses == 0


def test_a_warm_up_that_fails_leaves_a_working_session_that_prepares_at_first_use(monkeypatch, caplog):
    """On SQLite, which caches compiled statements per connection itself, nothing is warmed."""
    run_three_steps()
    real = pg._Prepared.prepared_statements
    broken = "SELECT 1 FROM durable_no_such_table WHERE id = %s"
    monkeypatch.setattr(pg._Prepared, "prepared_statements", lambda self: [*real(self), broken])
    with caplog.at_level(logging.WARNING, logger="durable.store"):
        renew()
    assert ("could not warm the new database session" in caplog.text) == POSTGRES
    assert run_three_steps()  # prepared anew at first use, under new names if the warm-up failed
    assert pg._losses == 0  # what the process believes prepared is


def test_server_side_binding_is_refused_by_name():
    """psycopg's server-side binding cannot send the journal's queries of several statements
    (every lease failed with "cannot insert multiple commands into a prepared statement")."""
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match=r"\['server_side_binding'\] is set"):
        pg.check_binding({"OPTIONS": {"server_side_binding": True}})
    pg.check_binding({"OPTIONS": {"server_side_binding": False}})
    pg.check_binding({"OPTIONS": {}})
    pg.check_binding({})


def test_a_project_asking_for_server_side_binding_does_not_start(tmp_path):
    """At start-up (the app's ready), before any worker takes a job; SQLite has no such option
    and starts."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "binding_settings.py").write_text(
        "from tests.durable.settings import *  # noqa: F403\n"
        "DATABASES['default'].setdefault('OPTIONS', {})['server_side_binding'] = True  # noqa: F405\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "binding_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)]),
    }
    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True, timeout=60
    )
    if POSTGRES:
        assert started.returncode != 0
        assert "ImproperlyConfigured" in started.stderr
        assert "server_side_binding" in started.stderr
    else:
        assert started.returncode == 0, started.stderr
