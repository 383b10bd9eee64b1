"""Very many waiting executions cost nothing to walk past: the sweep's queries and the admin's
list read a bounded range of an index whatever the number of executions that wait and are not
due (the figures: bench/scale.py, smoke-tested here at a tiny size)."""

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from durable import clock
from durable.listing import open_operations, search_executions
from durable.models import Execution, ExecutionStatus, HistoryEvent, Operation
from durable.store.base import due_query, expired_leases_query, timed_out_query
from durable.sweep import sweep

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
LIST = "/admin/durable/execution/"


def waiting(count: int, *, function: str = "tests.scale.waits", kind: str = "WAIT") -> list[str]:
    """`count` RUNNING executions parked on a timer or a callback that is not due for days,
    created over the past year, each with a finished step before its wait and its history."""
    now = clock.now()
    rows = [
        Execution(
            function_name=function,
            execution_name=uuid.uuid4().hex,
            input="{}",
            input_hash="0" * 64,
            status=ExecutionStatus.RUNNING,
            created_at=now - timedelta(seconds=(i * 7919) % (365 * 86400)),
            updated_at=now,
            timeout_seconds=366 * 86400,
            timeout_at=now + timedelta(days=366),
            wake_at=now + timedelta(days=1, seconds=i),
            label=f"scale document {i}",
        )
        for i in range(count)
    ]
    Execution.objects.bulk_create(rows, batch_size=500)
    ops = []
    for row in rows:
        ops.append(Operation(execution=row, operation_id="1" * 64, type="STEP", sub_type="Step", status="SUCCEEDED"))
        ops.append(
            Operation(
                execution=row,
                operation_id="2" * 64,
                type=kind,
                sub_type="Wait" if kind == "WAIT" else "Callback",
                status="STARTED",
                wait_until=row.wake_at if kind == "WAIT" else None,
                callback_id=uuid.uuid4().hex if kind == "CALLBACK" else None,
            )
        )
    Operation.objects.bulk_create(ops, batch_size=500)
    HistoryEvent.objects.bulk_create(
        (HistoryEvent(execution=row, event_type="StepSucceeded", timestamp=now) for row in rows), batch_size=500
    )
    return [str(row.pk) for row in rows]


def analyze() -> None:
    """PostgreSQL's statistics, as autovacuum keeps them. SQLite is left as Django leaves it: no
    ANALYZE, so no sqlite_stat1 (whose averages hide how few operations are open)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def finished(count: int, steps: int = 6) -> None:
    """`count` ended executions with `steps` finished steps each: most of a journal's rows."""
    ids = waiting(count, function="tests.scale.done")
    Execution.objects.filter(pk__in=ids).update(status=ExecutionStatus.SUCCEEDED, wake_at=None, ended_at=clock.now())
    Operation.objects.filter(execution_id__in=ids).update(status="SUCCEEDED")
    Operation.objects.bulk_create(
        (
            Operation(execution_id=pk, operation_id=f"{n:064x}", type="STEP", sub_type="Step", status="SUCCEEDED")
            for pk in ids
            for n in range(3, steps + 1)
        ),
        batch_size=500,
    )


def sweep_queries() -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        report = sweep()
    assert not report.acted, report
    return [q["sql"] for q in queries.captured_queries]


def test_the_sweeps_queries_do_not_grow_with_waiting_executions_that_are_not_due():
    empty = sweep_queries()
    waiting(1500)
    waiting(1500, kind="CALLBACK", function="tests.scale.approvals")
    many = sweep_queries()
    assert len(many) == len(empty), (empty, many)
    # Each of its reads is a range of an index of RUNNING executions: none reads the waiting rows.
    analyze()
    now = clock.now()
    for query, index in (
        (due_query(now), "durable_exec_due"),
        (timed_out_query(now), "durable_exec_timeout"),
        (expired_leases_query(now), "durable_exec_lease"),
    ):
        plan = query.values_list("pk")[:1000].explain()
        if connection.vendor == "sqlite":
            assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
            assert "SCAN durable_execution" not in plan, plan
        else:
            assert f"using {index} on durable_execution" in plan, plan
            assert "Seq Scan" not in plan, plan


def admin() -> Client:
    user = get_user_model().objects.create_superuser("scale-admin", "scale@example.com", "x")
    client = Client()
    client.force_login(user)
    return client


PAGES = [
    "",
    "?status__exact=RUNNING",
    "?function_name=tests.scale.waits",
    "?waiting=timer",
    "?waiting=callback",
    "?q=scale+document+7",
    "?created_at__year={year}",
]


def page_queries(client: Client, query: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST + query.format(year=clock.now().year))
    assert response.status_code == 200
    return len(queries)


def test_the_admin_list_runs_as_many_queries_with_many_executions_as_with_few():
    client = admin()
    waiting(30)
    waiting(30, kind="CALLBACK", function="tests.scale.approvals")
    few = {query: page_queries(client, query) for query in PAGES}
    waiting(1500)
    waiting(1500, kind="CALLBACK", function="tests.scale.approvals")
    many = {query: page_queries(client, query) for query in PAGES}
    assert many == few


def test_the_admin_list_counts_at_most_its_cap_and_no_full_count(settings):
    from durable import admin as durable_admin

    client = admin()
    waiting(120)
    original = durable_admin.COUNT_CAP
    durable_admin.COUNT_CAP = 50
    try:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(LIST)
    finally:
        durable_admin.COUNT_CAP = original
    assert response.context["cl"].result_count == 50
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert len(counts) == 1, counts  # no second COUNT(*) of the whole table
    assert "LIMIT 50" in counts[0], counts
    # No DISTINCT over every creation date for the date hierarchy either.
    assert not [q for q in queries.captured_queries if "datetime_trunc" in q["sql"] or "DATE_TRUNC" in q["sql"]]
    html = response.content.decode()
    assert "date-hierarchy-label" in html
    assert f"created_at__year={clock.now().year}" in html


def test_the_date_hierarchy_offers_the_years_months_and_days_between_the_first_and_last_execution():
    client = admin()
    now = clock.now()
    waiting(3)
    Execution.objects.update(created_at=now - timedelta(days=400))
    waiting(1)
    years = client.get(LIST).content.decode()
    for year in range((now - timedelta(days=400)).year, now.year + 1):
        assert f"?created_at__year={year}" in years
    month = client.get(LIST, {"created_at__year": now.year, "created_at__month": now.month}).content.decode()
    assert f"created_at__day={now.day}" in month.replace("&amp;", "&")


def plan_of(query: str) -> str:
    """The plan of the admin's results query for `query` (the page's query that reads executions
    with a LIMIT, not the capped count)."""
    client = admin() if not get_user_model().objects.exists() else None
    if client is None:
        client = Client()
        client.force_login(get_user_model().objects.get(username="scale-admin"))
    with CaptureQueriesContext(connection) as queries:
        assert client.get(LIST + query).status_code == 200
    sql = next(
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('SELECT "durable_execution"."id", "durable_execution"."function_name"')
    )
    with connection.cursor() as cursor:
        cursor.execute(("EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN ") + sql)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


@pytest.mark.parametrize(
    ("query", "sqlite_index"),
    [
        ("", "durable_exec_list"),
        ("?status__exact=RUNNING", "durable_exec_list_status"),
        ("?function_name=tests.scale.waits", "durable_exec_list_function"),
        ("?waiting=timer", "durable_op_open"),
    ],
)
def test_the_admin_list_reads_a_page_of_an_index_not_every_row_sorted(query, sqlite_index):
    admin()
    waiting(3000)
    waiting(1000, kind="CALLBACK", function="tests.scale.approvals")
    finished(2000)
    analyze()
    plan = plan_of(query)
    if connection.vendor == "sqlite":
        assert sqlite_index in plan, plan
        assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
        assert "SCAN durable_execution" not in plan or "INDEX durable_exec_list" in plan, plan
    elif "waiting" in query:
        # A few thousand rows: PostgreSQL may hash the open operations and scan the executions.
        assert "durable_op_open" in plan, plan
    else:
        assert "Seq Scan on durable_execution" not in plan, plan
        assert "Index" in plan, plan


def test_a_search_by_id_or_whole_name_is_an_index_lookup():
    ids = waiting(2000)
    analyze()
    target = Execution.objects.get(pk=ids[1234])
    for term in (str(target.pk), target.execution_name):
        found = search_executions(Execution.objects.all(), term)
        assert list(found.values_list("pk", flat=True)) == [target.pk]
        plan = found.explain()
        if connection.vendor == "sqlite":
            assert "SCAN durable_execution" not in plan, plan
        else:
            assert "Seq Scan on durable_execution" not in plan, plan
    # A part of a name still finds it (a scan: there is no index for that).
    assert list(
        search_executions(Execution.objects.all(), target.execution_name[3:20]).values_list("pk", flat=True)
    ) == [target.pk]


def test_open_operations_are_read_from_their_index():
    waiting(2000)
    waiting(50, kind="CALLBACK", function="tests.scale.approvals")
    finished(2000)
    analyze()
    plan = open_operations("callback").values("execution_id").explain()
    if connection.vendor == "sqlite":
        assert "durable_op_open" in plan, plan
    else:
        assert "durable_op_open" in plan, plan
        assert "Seq Scan" not in plan, plan


@pytest.mark.processes
@pytest.mark.timeout(300)
def test_the_scale_bench_runs_at_a_tiny_size_and_prints_every_figure(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    if connection.vendor == "postgresql":
        settings = connection.settings_dict
        # A database of its own on the same server (the bench migrates it, DBOS adds its schema).
        import psycopg

        name = f"bench_scale_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(
            host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname="postgres", autocommit=True
        ) as server:
            server.execute(f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{name}"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "scale.py"),
            *("--executions", "200", "--real", "60", "--new-work", "20", "--latency-samples", "3"),
            *("--admin-rounds", "1", "--dbos-workflows", "10", "--workers", "1"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["waiting"] >= 150
    assert figures["history_rows"] >= 2000
    for key in ("bytes_per_waiting_execution", "bytes_per_waiting_execution_real"):
        assert figures[key] > 0
    assert figures["bytes_per_step"]["per_step"] > 0
    for key in ("sweep_empty", "sweep_waiting"):
        assert figures[key]["ms"] > 0
        assert figures[key]["queries"] > 0
    assert figures["sweep_waiting"]["queries"] == figures["sweep_empty"]["queries"]
    for key in ("new_work_empty", "new_work_waiting"):
        assert figures[key]["exec_per_s"] > 0
        assert figures[key]["first_step_p50_ms"] > 0
    assert figures["rss_kib_before"]
    assert figures["rss_kib_after"]
    for page in ("list", "status=RUNNING", "function", "waiting=timer", "waiting=callback", "search id"):
        assert figures["admin"][page]["ms"] > 0
        assert figures["admin"][page]["queries"] > 0
    assert figures["admin"]["execution page"]["ms"] > 0
    # DBOS's ten waiting workflows may fit in pages its tables already have: present, not zero.
    assert isinstance(figures["dbos"]["bytes_per_waiting_workflow"], int)
    assert figures["dbos"]["bytes_per_step"] > 0
    assert "first step p50" in result.stdout


@pytest.mark.parametrize("query", [{"q": "scale document"}, {"label": "scale document"}, {}])
def test_the_list_is_newest_first_with_or_without_a_text_search(query):
    client = admin()
    waiting(30)
    response = client.get(LIST, query)
    shown = [row.created_at for row in response.context["cl"].result_list]
    assert len(shown) == 30
    assert shown == sorted(shown, reverse=True)
