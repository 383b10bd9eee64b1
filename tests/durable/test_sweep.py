"""The sweep's queries use indexes, and their number does not grow with waiting executions."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from durable import clock
from durable.models import Execution
from durable.store.base import due_query, expired_leases_query, timed_out_query
from durable.sweep import sweep

pytestmark = pytest.mark.django_db


def make_waiting(count: int) -> None:
    now = clock.now()
    Execution.objects.bulk_create(
        [
            Execution(
                function_name="tests.sweep.waiting",
                execution_name=uuid.uuid4().hex,
                input="{}",
                input_hash="0" * 64,
                created_at=now,
                updated_at=now,
                timeout_seconds=86400,
                timeout_at=now + timedelta(days=1),
                wake_at=now + timedelta(hours=2 + i % 10),
            )
            for i in range(count)
        ],
        batch_size=2000,
    )


def sweep_queries() -> int:
    with CaptureQueriesContext(connection) as captured:
        report = sweep()
    assert not report.acted
    return len(captured.captured_queries)


def test_sweep_query_count_does_not_grow_with_waiting_executions():
    make_waiting(100)
    few = sweep_queries()
    make_waiting(9_900)
    assert Execution.objects.count() == 10_000
    assert sweep_queries() == few
    assert few <= 5  # three range scans, and the savepoint around the time-out claim


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (due_query, "durable_exec_due"),
        (timed_out_query, "durable_exec_timeout"),
        (expired_leases_query, "durable_exec_lease"),
    ],
)
def test_sweep_queries_use_their_index(query, index):
    make_waiting(10_000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    plan = query(clock.now()).values_list("pk", flat=True)[:1000].explain()
    if connection.vendor == "sqlite":
        assert f"SEARCH durable_execution USING INDEX {index}" in plan, plan
        assert "SCAN durable_execution" not in plan, plan
    else:
        assert f"Index Scan using {index} on durable_execution" in plan, plan
        assert "Seq Scan" not in plan, plan


def test_the_sweep_times_out_late_callbacks_and_executions():
    import json

    from durable.client import get_history
    from durable.models import Operation
    from durable.testing import DurableTestRunner
    from tests.workflows import approval

    with DurableTestRunner(approval) as runner:
        late_callback = runner.run_async(json.dumps({"timeout": 60}))
        late_execution = runner.run_async(json.dumps({"timeout": 600}), execution_timeout=120)
        runner.wait_for_callback(late_callback)
        runner.wait_for_callback(late_execution)
        runner.clock.advance_to(runner.clock.current + timedelta(seconds=61))
        first = sweep()
        assert first.timed_out_callbacks == 1
        assert first.dispatched_due == [late_callback]
        callback = Operation.objects.get(execution_id=late_callback, type="CALLBACK")
        assert callback.status == "TIMED_OUT"
        assert "timed out" in callback.error["ErrorMessage"]
        runner.clock.advance_to(runner.clock.current + timedelta(seconds=60))
        second = sweep()
        assert second.timed_out_executions == [late_execution]
        assert Execution.objects.get(pk=late_execution).status == "TIMED_OUT"
        assert get_history(late_execution)["Events"][-1]["EventType"] == "ExecutionTimedOut"
        # The execution whose callback timed out resumes and handles the timeout itself.
        result = runner.wait_for_result(late_callback)
    assert result.status == "FAILED"
    assert result.error["ErrorType"] == "CallbackTimeoutError"


@pytest.mark.django_db(transaction=True)  # as in a worker: no test transaction around it
def test_a_sweep_with_nothing_to_do_opens_no_transaction():
    """Most sweeps find nothing: their reads take no writer's lock (SQLite's BEGIN IMMEDIATE) and
    no transaction (PostgreSQL's BEGIN, SELECT ... FOR UPDATE, COMMIT), each second. Before, the
    time-out claim and the outbox's claim each opened one."""
    from durable.sweep import deliver_events

    make_waiting(50)
    with CaptureQueriesContext(connection) as captured:
        report = sweep()
        report.events = deliver_events()
    assert not report.acted
    statements = [q["sql"].upper() for q in captured.captured_queries]
    assert statements, "the sweep read nothing"
    assert all(s.startswith("SELECT") for s in statements), statements
    assert not any("FOR UPDATE" in s for s in statements), statements
