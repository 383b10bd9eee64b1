"""Issue 19: the indexes a journal's commits write least into. The sweep's due and lease indexes
and the purge's ended index hold only the rows with a wake-up, a lease or an end (an execution's
start and end write no entry into them), the history's chart index leads with the time (a
commit's events share one page of it), the admin list's indexes are ascending (a start's entries
go to their right edge), the open operations' index holds open operations only, the journal has no
index of its own (it loads from the unique one); and every query
that read them still reads them, on both databases, with rows outside them that a scan would
show (the list's: tests/durable/test_scale.py)."""

from datetime import timedelta

import pytest
from django.db import connection

from durable import clock
from durable.dashboard import attempt_events, failure_events
from durable.listing import open_operations
from durable.models import OPEN_STATUSES, Execution, HistoryEvent, Operation
from durable.store import journal_store, sql
from durable.store.base import _expired_callbacks, due_query, expired_leases_query, timed_out_query
from durable.store.purge import expired_query
from tests.durable.test_write_indexes import assert_index_read, family

pytestmark = pytest.mark.django_db


def index_sql(name: str) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = %s", [name])
        else:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        row = cursor.fetchone()
    assert row, f"no index {name}"
    return " ".join(row[0].replace('"', "").split()).upper()


@pytest.mark.parametrize(
    ("name", "columns", "condition"),
    [
        ("durable_exec_due", "STATUS, WAKE_AT", "WAKE_AT IS NOT NULL"),
        ("durable_exec_lease", "STATUS, LEASE_EXPIRES_AT", "LEASE_EXPIRES_AT IS NOT NULL"),
        ("durable_exec_ended", "FUNCTION_NAME, ENDED_AT", "ENDED_AT IS NOT NULL"),
        ("durable_exec_timeout", "STATUS, TIMEOUT_AT", "RUNNING"),
        ("durable_history_time_type", "TIMESTAMP, EVENT_TYPE", "STEPSUCCEEDED"),
    ],
)
def test_the_sweep_purge_and_chart_indexes_hold_only_the_rows_they_look_for(name, columns, condition):
    sql = index_sql(name)
    assert columns in sql, sql
    assert "WHERE" in sql, sql
    assert condition in sql, sql


def test_the_history_chart_index_leads_with_the_time():
    sql = index_sql("durable_history_time_type")
    assert "(TIMESTAMP, EVENT_TYPE)" in sql, sql
    assert "EXECUTIONSTARTED" not in sql, sql  # the kinds the charts do not read are left out
    with connection.cursor() as cursor:
        names = set(connection.introspection.get_constraints(cursor, "durable_historyevent"))
    assert "durable_history_type_time" not in names  # replaced, not kept beside it


def rows(count: int) -> None:
    """Executions of every state the indexes leave out or keep: running without a wake-up or a
    lease, running and due later, leased, ended; and history over two days."""
    now = clock.now()
    base = {
        "function_name": "tests.partial",
        "input": "{}",
        "input_hash": "0" * 64,
        "created_at": now,
        "updated_at": now,
        "timeout_seconds": 3600,
        "timeout_at": now + timedelta(hours=1),
    }
    made = []
    for n in range(count):
        state = n % 4
        fields = dict(base, execution_name=f"partial-{n}", status="RUNNING")
        if state == 1:
            fields["wake_at"] = now + timedelta(days=30)
        elif state == 2:
            fields.update(lease_token="t" * 32, lease_owner="w", lease_expires_at=now + timedelta(minutes=1))
        elif state == 3:
            fields.update(status="SUCCEEDED", ended_at=now - timedelta(days=n % 50))
        made.append(Execution(**fields))
    Execution.objects.bulk_create(made)
    events = []
    for n, execution in enumerate(made[:400]):
        at = now - timedelta(hours=n)
        for kind in ("ExecutionStarted", "StepStarted", "StepSucceeded", "InvocationCompleted"):
            events.append(HistoryEvent(execution=execution, event_type=kind, operation_id="op", timestamp=at))
    HistoryEvent.objects.bulk_create(events, batch_size=1000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def test_the_queries_that_read_them_still_read_them():
    rows(2000)
    now = clock.now()
    assert_index_read(due_query(now).values_list("pk"), "durable_exec_due")
    assert_index_read(timed_out_query(now).values_list("pk"), "durable_exec_timeout")
    assert_index_read(expired_leases_query(now).values_list("pk"), "durable_exec_lease")
    assert_index_read(expired_query("tests.partial", now - timedelta(days=10)), "durable_exec_ended")
    assert_index_read(failure_events(now - timedelta(days=1)), "durable_history_time_type")
    assert_index_read(attempt_events(now - timedelta(days=1)), "durable_history_time_type")
    if connection.vendor == "sqlite":  # read newest first along the index: no sort of the window
        assert "TEMP B-TREE" not in attempt_events(now - timedelta(days=1)).explain()


def test_what_the_partial_indexes_leave_out_is_still_found_right():
    rows(200)
    now = clock.now()
    later = now + timedelta(days=31)
    # Due: only the running executions whose wake-up has come (the lease-free ones).
    assert due_query(now).count() == 0
    assert due_query(later).count() == 50
    # Leases: the fifty leased ones, once their lease has lapsed.
    assert expired_leases_query(now).count() == 0
    assert expired_leases_query(now + timedelta(minutes=2)).count() == 50
    # Timed out: the running ones past their timeout (none of the ended ones, also past it).
    assert timed_out_query(now).count() == 0
    assert timed_out_query(now + timedelta(hours=2)).count() == 150  # every running one, leases lapsed
    # Ended: the purge's candidates, by their end.
    cutoff = now - timedelta(days=10)
    expected = Execution.objects.filter(status="SUCCEEDED", ended_at__lt=cutoff).count()
    assert expected > 0
    assert expired_query("tests.partial", cutoff).count() == expected
    # The charts' events: those of the window, of the kinds they read.
    assert failure_events(now - timedelta(days=1)).count() == 0
    in_window = HistoryEvent.objects.filter(timestamp__gte=now - timedelta(hours=24)).count()
    assert attempt_events(now - timedelta(hours=24)).count() == in_window // 2


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        ("durable_exec_list", "(CREATED_AT, ID)"),
        ("durable_exec_list_status", "(STATUS, CREATED_AT, ID)"),
        ("durable_exec_list_function", "(FUNCTION_NAME, CREATED_AT, ID)"),
    ],
)
def test_the_admin_list_indexes_are_ascending_and_read_backwards(name, columns):
    sql = index_sql(name)
    assert columns in sql.replace(" ASC", ""), sql
    assert " DESC" not in sql, sql


def test_the_open_operations_index_holds_only_open_operations_and_the_sweep_reads_it():
    sql = index_sql("durable_op_open")
    assert "WHERE" in sql, sql
    assert "STARTED" in sql, sql
    assert "PENDING" in sql, sql
    assert "SUCCEEDED" not in sql, sql
    family()  # many operations, every one a succeeded step, but for one callback
    now = clock.now()
    assert_index_read(_expired_callbacks(now).values_list("pk"), "durable_op_open")
    assert_index_read(open_operations("callback").values_list("execution_id"), "durable_op_open")


def test_the_literal_lookup_writes_words_only():
    with pytest.raises(ValueError, match="plain words only"):
        list(Operation.objects.filter(status__literal_in=("STARTED') OR 1=1 --",)))
    with pytest.raises(ValueError, match="plain words only"):
        list(Operation.objects.filter(status__literal_in=()))
    sql = str(Operation.objects.filter(status__literal_in=OPEN_STATUSES).query)
    assert "IN ('STARTED', 'PENDING')" in sql, sql


def test_the_journal_loads_from_the_unique_index_sorted_with_no_index_of_its_own():
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "durable_operation")
    assert not [name for name, c in found.items() if c["index"] and c["columns"] == ["execution_id", "id"]]
    parent, _ = family(children=1, operations=40)
    load = sql.statements().load_journal
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + load.replace("%s", "?"), [parent.pk.hex])
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
            assert "USING INDEX sqlite_autoindex_durable_operation" in plan, plan
        else:
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("EXPLAIN " + load, [parent.pk])
            plan = " ".join(row[0] for row in cursor.fetchall())
            cursor.execute("RESET enable_seqscan")
            assert "durable_operation_unique" in plan, plan
    journal = journal_store().load_journal(str(parent.pk))
    ids = list(Operation.objects.filter(execution=parent).order_by("id").values_list("operation_id", flat=True))
    assert list(journal) == ids  # in the order the operations were first written
