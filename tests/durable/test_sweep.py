"""The sweep's queries use indexes, and their number does not grow with waiting executions."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from durable import clock
from durable.models import Execution
from durable.sweep import due_query, expired_leases_query, sweep, timed_out_query

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
    assert sweep_queries() == few == 3


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
    assert f"USING INDEX {index}" in plan, plan
    assert "SCAN durable_execution" not in plan.replace(f"USING INDEX {index}", ""), plan
