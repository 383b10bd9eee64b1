"""Very many waiting executions: what they cost (issue 19).

On the database in DATABASE_URL (PostgreSQL: run under scripts/with-postgres) or a fresh SQLite
file, with real workers (`manage.py durable_worker`) on a real Redis, as bench/workers.py:

1. On the empty database: the sweep's time and query count, start-to-first-step latency and
   executions per second of new work, the workers' memory (RSS), and the bytes of a journal
   step (executions of 1 and of 21 steps through the workers: the difference over 20 steps).
2. --real executions started through the public API (`start_execution`) and run by the workers
   until they wait: timers spread over a year, callbacks pending (half with a 30-day deadline),
   and a few timers due within seconds (they fire and end during the run). The rest, up to
   --executions, are copies of those waiting rows inserted in bulk (the public path runs at a
   few hundred per second here: 100,000 would take longer than the whole bench), each with its
   own id, name, label, creation time over the past year, timer over the coming year, callback
   id; then history events in bulk (INSERT ... SELECT) up to --history.
3. With them waiting: the same figures again, database bytes per waiting execution, the admin's
   executions list (plain, filtered, searched) and an execution's page through Django's test
   Client logged in as a superuser (median of --admin-rounds, and the query count).
4. DBOS 3.4 (unless --no-dbos), in a process of its own on the same kind of database: bytes per
   waiting workflow and per step. A DBOS workflow that sleeps or waits in `DBOS.recv` holds a
   thread for the whole wait, so DBOS cannot hold 100,000 of them here: --dbos-workflows of
   them wait (half in DBOS.sleep over a year, half in DBOS.recv), and the bytes its system
   tables grew by are divided by that number.

SQLite sizes come from dbstat (the pages each table and index holds, the WAL included);
PostgreSQL's from pg_total_relation_size (table, indexes, TOAST) after ANALYZE. The last line
printed is a JSON object with every figure.

Usage: python bench/scale.py [--executions 10000] [--real 500] [--history N] [--workers 2]
       [--new-work 300] [--latency-samples 200] [--admin-rounds 5] [--dbos-workflows 200] [--no-dbos]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

YEAR = 365 * 86400


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=10000, help="waiting executions in all")
    parser.add_argument("--real", type=int, default=500, help="of which started through the public API")
    parser.add_argument("--history", type=int, default=None, help="history events in all (default 10 per execution)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--new-work", type=int, default=300, help="executions of new work per throughput run")
    parser.add_argument(
        "--latency-samples",
        type=int,
        default=200,
        help="start-to-first-step samples, one execution at a time (a p50 of 30 moved by a third from run to run)",
    )
    parser.add_argument("--admin-rounds", type=int, default=5)
    parser.add_argument("--dbos-workflows", type=int, default=200)
    parser.add_argument("--no-dbos", action="store_true")
    parser.add_argument("--dbos-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dbos_child:
        dbos_child(args.database_url, args.dbos_workflows)
        return
    real = min(args.real, args.executions)
    history = args.history if args.history is not None else 10 * args.executions

    workdir = tempfile.mkdtemp(prefix="bench-scale-")
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{os.path.join(workdir, 'journal.sqlite3')}"
    database = "postgresql" if os.environ["DATABASE_URL"].startswith("postgres") else "sqlite"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_LOG_LEVEL="WARNING",
        DJANGO_DEBUG="false",  # as in production (with DEBUG on, Django records every query)
        DJANGO_ALLOWED_HOSTS="testserver,localhost",
        DURABLE_SWEEP_INTERVAL="1",
    )
    from rq import Worker as RQWorker

    from tests.processes import RedisServer, Worker, wait_until

    redis_server = RedisServer().start()
    os.environ["REDIS_URL"] = redis_server.url
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from bench import scale_workflows as wf
    from durable.client import start_execution
    from durable.models import Execution

    out: dict[str, Any] = {"database": database, "executions": args.executions, "real": real, "history": history}
    pool: list[Any] = []
    try:
        pool = [Worker(dict(os.environ), f"bench-scale-{i}") for i in range(args.workers)]
        wait_until(
            lambda: len(RQWorker.all(connection=redis_server.client())) >= args.workers,
            60,
            interval=0.05,
            message="workers to register",
        )
        warm = [str(start_execution(wf.scale_new, {}).pk) for _ in range(10 * args.workers)]
        wait_until(lambda: all_ended(warm), 60, interval=0.05, message="warm-up")

        # 1. The empty database.
        out["rss_kib_before"] = [rss_kib(pid) for w in pool for pid in sorted(w.worker_pids())]
        out["sweep_empty"] = measure_sweep()
        out["new_work_empty"] = measure_new_work(args.new_work, args.latency_samples)
        out["bytes_per_step"] = bytes_per_step(database)

        # 2. Waiting executions: some through the public API, the rest copied in bulk.
        tables_before = table_bytes(database)
        before = sum(tables_before.values())
        started = time.perf_counter()
        templates = start_waiting(real)
        out["real_start_seconds"] = round(time.perf_counter() - started, 2)
        analyze(database)
        waiting_real = Execution.objects.filter(status="RUNNING").count()
        out["bytes_per_waiting_execution_real"] = round((durable_bytes(database) - before) / max(1, waiting_real))
        started = time.perf_counter()
        copy_waiting(templates, args.executions - waiting_real)
        out["bulk_seconds"] = round(time.perf_counter() - started, 2)
        analyze(database)
        waiting = Execution.objects.filter(status="RUNNING").count()
        out["waiting"] = waiting
        tables_after = table_bytes(database)
        out["bytes_per_waiting_execution"] = round((sum(tables_after.values()) - before) / waiting)
        out["bytes_per_waiting_execution_by_table"] = {
            name: round((size - tables_before.get(name, 0)) / waiting) for name, size in tables_after.items()
        }
        # New work beside the waiting executions, before the bulk of the history is added.
        out["new_work_waiting_no_history"] = measure_new_work(args.new_work, args.latency_samples)
        started = time.perf_counter()
        out["history_rows"] = add_history(database, history)
        out["history_seconds"] = round(time.perf_counter() - started, 2)
        analyze(database)

        # 3. The same figures with them waiting.
        out["sweep_waiting"] = measure_sweep()
        out["new_work_waiting"] = measure_new_work(args.new_work, args.latency_samples)
        out["rss_kib_after"] = [rss_kib(pid) for w in pool for pid in sorted(w.worker_pids())]
        out["admin"] = measure_admin(args.admin_rounds)
        still = Execution.objects.filter(status="RUNNING").count()
        out["still_waiting"] = still
    finally:
        for worker in pool:
            worker.stop()
        redis_server.stop()

    if not args.no_dbos:
        url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
        if database == "sqlite":
            url = f"sqlite:///{os.path.join(workdir, 'dbos.sqlite3')}"
        command = [sys.executable, str(Path(__file__).resolve()), "--dbos-child", "--database-url", url]
        command += ["--dbos-workflows", str(args.dbos_workflows)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"DBOS side failed:\n{result.stderr[-3000:]}")
        out["dbos"] = json.loads(result.stdout.strip().splitlines()[-1])
    report(out)
    print(json.dumps(out))


def all_ended(ids: list[str]) -> bool:
    """Whether none of `ids` is RUNNING, read by primary key: `status = 'RUNNING' AND pk IN`
    let SQLite scan every waiting execution on the status index at each poll, which here made
    the bench, not the engine, slower with them waiting."""
    from durable.models import Execution

    statuses = Execution.objects.filter(pk__in=ids).values_list("status", flat=True)
    return "RUNNING" not in set(statuses)


def measure_sweep(rounds: int = 7) -> dict[str, Any]:
    """The sweep run here (the workers sweep too, once a second): median time, queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from durable.sweep import sweep

    times, counts = [], []
    for _ in range(rounds):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            sweep()
            times.append(time.perf_counter() - started)
        counts.append(len(queries))
    return {"ms": round(statistics.median(times) * 1000, 2), "queries": max(counts)}


def measure_new_work(executions: int, samples: int, rounds: int = 3) -> dict[str, Any]:
    """Start-to-first-step latency, one execution at a time; then `executions` at once, in
    `rounds` rounds (the median counts)."""
    from bench import scale_workflows as wf
    from durable.client import start_execution
    from durable.models import Execution
    from tests.processes import wait_until

    latencies = []
    for _ in range(samples):
        sent = time.time()
        pk = str(start_execution(wf.scale_new, {}).pk)
        wait_until(lambda pk=pk: all_ended([pk]), 60, interval=0.002, message="new work")
        latencies.append(json.loads(Execution.objects.get(pk=pk).result) - sent)
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        ids = [str(start_execution(wf.scale_new, {}).pk) for _ in range(executions)]
        wait_until(lambda ids=ids: all_ended(ids), 600, interval=0.05, message="throughput run")
        rates.append(executions / (time.perf_counter() - started))
        failed = Execution.objects.filter(pk__in=ids).exclude(status="SUCCEEDED").count()
        assert not failed, f"{failed} executions of new work did not succeed"
    return {
        "first_step_p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "first_step_p95_ms": round(percentile(latencies, 95) * 1000, 2),
        "exec_per_s": round(statistics.median(rates), 1),
        "exec_per_s_rounds": [round(r, 1) for r in rates],
    }


def durable_bytes(database: str) -> int:
    """Bytes the engine's durable tables hold, with their indexes."""
    return sum(table_bytes(database).values())


def table_bytes(database: str) -> dict[str, int]:
    """Bytes each of the engine's durable tables holds, with its indexes."""
    from django.db import connection

    with connection.cursor() as cursor:
        if database == "sqlite":
            cursor.execute(
                "SELECT m.tbl_name, coalesce(sum(d.pgsize), 0) FROM dbstat d JOIN sqlite_master m "
                "ON m.name = d.name WHERE m.tbl_name LIKE 'durable\\_%' ESCAPE '\\' GROUP BY m.tbl_name"
            )
        else:
            cursor.execute(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.relname LIKE 'durable\\_%'"
            )
        return {name: int(size) for name, size in cursor.fetchall()}


def analyze(database: str) -> None:
    """PostgreSQL: refresh the planner's statistics (autovacuum would, a little later). SQLite
    is left as Django leaves it (no ANALYZE: the worst case), its WAL checkpointed (the bulk
    inserts leave it tens of megabytes long, which no steady load would)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE" if database == "postgresql" else "PRAGMA wal_checkpoint(TRUNCATE)")


def bytes_per_step(database: str, executions: int = 50) -> dict[str, Any]:
    """Executions of 1 and of 21 steps through the workers; the bytes of the 20 steps between."""
    from bench import scale_workflows as wf
    from durable.client import start_execution
    from tests.processes import wait_until

    grown = {}
    for steps in (1, 21):
        analyze(database)
        before = durable_bytes(database)
        ids = [str(start_execution(wf.scale_steps, {"steps": steps}).pk) for _ in range(executions)]
        wait_until(lambda ids=ids: all_ended(ids), 300, interval=0.05, message="step runs")
        analyze(database)
        grown[steps] = durable_bytes(database) - before
    return {
        "per_step": round((grown[21] - grown[1]) / (20 * executions)),
        "per_1_step_execution": round(grown[1] / executions),
    }


def start_waiting(count: int) -> dict[str, list[str]]:
    """`count` executions through the public API, until each waits; the waiting ones by kind."""
    from bench import scale_workflows as wf
    from durable.client import start_execution
    from durable.models import Execution, Operation
    from tests.processes import wait_until

    rng = random.Random(19)
    kinds: dict[str, list[str]] = {"timer": [], "callback": [], "soon": []}
    for i in range(count):
        label = f"scale document {i}"
        if i % 20 == 0:
            kinds["soon"].append(str(start_execution(wf.scale_timer, {"seconds": 2 + i % 5}, label=label).pk))
        elif i % 2:
            seconds = rng.randrange(86400, YEAR)
            kinds["timer"].append(str(start_execution(wf.scale_timer, {"seconds": seconds}, label=label).pk))
        else:
            event = {"timeout": 30 * 86400} if i % 4 == 0 else {}
            kinds["callback"].append(str(start_execution(wf.scale_callback, event, label=label).pk))

    def waiting(ids: list[str], op_type: str) -> bool:
        parked = Operation.objects.filter(execution_id__in=ids, type=op_type, status="STARTED")
        free = Execution.objects.filter(pk__in=ids, lease_token__isnull=True)
        return parked.values("execution_id").distinct().count() == len(ids) and free.count() == len(ids)

    wait_until(lambda: waiting(kinds["timer"], "WAIT"), 600, interval=0.2, message="timers to wait")
    wait_until(lambda: waiting(kinds["callback"], "CALLBACK"), 600, interval=0.2, message="callbacks to wait")
    wait_until(lambda: all_ended(kinds["soon"]), 120, interval=0.2, message="timers due soon to fire")
    return kinds


def copy_waiting(templates: dict[str, list[str]], count: int, batch: int = 2000) -> None:
    """`count` copies of the waiting executions' rows (execution, operations, history), each
    with its own identity and times, inserted in bulk."""
    from django.db import transaction

    from durable import clock
    from durable.identifier import new_execution_id
    from durable.models import Execution, HistoryEvent, Operation

    rng = random.Random(20)
    now = clock.now()
    kinds = [k for k in ("timer", "callback") if templates[k]]
    rows = {
        pk: (
            Execution.objects.get(pk=pk),
            list(Operation.objects.filter(execution_id=pk).order_by("id")),
            list(HistoryEvent.objects.filter(execution_id=pk).order_by("id")),
        )
        for kind in kinds
        for pk in templates[kind][:20]
    }
    made = 0
    while made < count:
        executions, operations, events = [], [], []
        for _ in range(min(batch, count - made)):
            kind = kinds[made % len(kinds)]
            execution, ops, history = rows[rng.choice(templates[kind][:20])]
            new = Execution(**{f.attname: getattr(execution, f.attname) for f in Execution._meta.concrete_fields})
            new.created_at = now - timedelta(seconds=rng.randrange(YEAR))
            new.pk = new_execution_id(new.created_at)  # as the engine makes them, at their creation
            new.execution_name = new.pk.hex
            new.label = f"scale document {made + 1_000_000}"
            new.updated_at = new.created_at
            new.timeout_at = now + timedelta(days=366)
            wake = now + timedelta(seconds=rng.randrange(86400, YEAR))
            if kind == "timer":
                new.wake_at = wake
            elif execution.wake_at is not None:
                new.wake_at = now + timedelta(days=30)
            executions.append(new)
            for op in ops:
                copy = Operation(**{f.attname: getattr(op, f.attname) for f in Operation._meta.concrete_fields})
                copy.pk = None
                copy.execution_id = new.pk
                if copy.callback_id:
                    copy.callback_id = uuid.uuid4().hex
                if copy.type == "WAIT" and copy.status == "STARTED":
                    copy.wait_until = wake
                operations.append(copy)
            for event in history:
                copied = HistoryEvent(
                    **{f.attname: getattr(event, f.attname) for f in HistoryEvent._meta.concrete_fields}
                )
                copied.pk = None
                copied.execution_id = new.pk
                events.append(copied)
            made += 1
        with transaction.atomic():
            Execution.objects.bulk_create(executions, batch_size=500)
            Operation.objects.bulk_create(operations, batch_size=500)
            HistoryEvent.objects.bulk_create(events, batch_size=500)


def add_history(database: str, total: int) -> int:
    """History events up to `total` in all, in bulk: one INSERT ... SELECT per round, one event
    for each of (up to) the executions short of it."""
    from django.db import connection, transaction

    from durable.models import Execution, HistoryEvent

    have = HistoryEvent.objects.count()
    executions = Execution.objects.count()
    details = '{"note": "bulk"}'
    while have < total:
        take = min(executions, total - have)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO durable_historyevent "
                "(execution_id, event_type, operation_id, parent_id, name, sub_type, timestamp, details) "
                "SELECT id, 'StepSucceeded', NULL, NULL, 'bulk', 'Step', created_at, %s "
                f"FROM durable_execution ORDER BY id LIMIT {int(take)}",
                [details],
            )
        have += take
    return HistoryEvent.objects.count()


ADMIN_PAGES = {
    "list": "",
    "status=RUNNING": "?status__exact=RUNNING",
    "status=FAILED": "?status__exact=FAILED",
    "function": "?function_name=bench.scale_workflows.scale_callback",
    "waiting=timer": "?waiting=timer",
    "waiting=callback": "?waiting=callback",
    "waiting=invoke": "?waiting=invoke",
    "search id": "?q={id}",
    "search label": "?q=document+1000123",
    "label filter": "?label=document+1000123",
    "page 50": "?p=50",
}


def measure_admin(rounds: int) -> dict[str, dict[str, Any]]:
    """Each admin page: median time of `rounds` GETs after one warm-up, and its queries."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from durable.models import Execution, HistoryEvent

    user, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_superuser": True})
    user.is_superuser = user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    running = Execution.objects.filter(status="RUNNING").order_by("-created_at").values_list("pk", flat=True)
    some = running[min(500, running.count() // 2)]
    function = Execution.objects.values_list("function_name", flat=True).filter(pk=some).get()
    pages = {name: "/admin/durable/execution/" + query.format(id=some) for name, query in ADMIN_PAGES.items()}
    pages["page 50"] = f"/admin/durable/execution/?p={max(1, min(50, Execution.objects.count() // 100))}"
    pages["function"] = f"/admin/durable/execution/?function_name={function}"
    pages["execution page"] = f"/admin/durable/execution/{some}/change/"
    busiest = (
        HistoryEvent.objects.values_list("execution_id", flat=True).order_by("-id").first()
    )  # one with bulk history
    pages["execution page (bulk history)"] = f"/admin/durable/execution/{busiest}/change/"
    found: dict[str, dict[str, Any]] = {}
    for name, url in pages.items():
        response = client.get(url, secure=True)
        assert response.status_code == 200, (url, response.status_code)
        times = []
        for _ in range(rounds):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url, secure=True)
                times.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
        slowest = max(queries.captured_queries, key=lambda q: float(q["time"]), default={"sql": "", "time": "0"})
        found[name] = {
            "ms": round(statistics.median(times) * 1000, 1),
            "min_ms": round(min(times) * 1000, 1),
            "queries": len(queries),
            "slowest_query_ms": round(float(slowest["time"]) * 1000, 1),
            "slowest_query": slowest["sql"][:300],
        }
    return found


def report(out: dict[str, Any]) -> None:
    print(
        f"\n{out['database']}: {out['waiting']} waiting executions ({out['real']} started through the API, "
        f"the rest copied in bulk), {out['history_rows']} history events"
    )
    print(
        f"bytes per waiting execution: {out['bytes_per_waiting_execution']} "
        f"(the {out['real']} through the API: {out['bytes_per_waiting_execution_real']}); "
        f"per journal step: {out['bytes_per_step']['per_step']}"
    )
    print(
        "  by table:",
        ", ".join(
            f"{k.removeprefix('durable_')} {v}" for k, v in out["bytes_per_waiting_execution_by_table"].items() if v
        ),
    )
    if "dbos" in out:
        d = out["dbos"]
        print(
            f"DBOS {d['dbos_version']}: bytes per waiting workflow {d['bytes_per_waiting_workflow']} "
            f"({d['workflows']} waiting, one thread each), per step {d['bytes_per_step']}"
        )
    e, w = out["sweep_empty"], out["sweep_waiting"]
    print(f"sweep: empty {e['ms']} ms, {e['queries']} queries; with them waiting {w['ms']} ms, {w['queries']} queries")
    e, w = out["new_work_empty"], out["new_work_waiting"]
    print(
        f"new work: first step p50 {e['first_step_p50_ms']} -> {w['first_step_p50_ms']} ms, "
        f"p95 {e['first_step_p95_ms']} -> {w['first_step_p95_ms']} ms; "
        f"{e['exec_per_s']} -> {w['exec_per_s']} executions/s ({w['exec_per_s'] / e['exec_per_s']:.2f}x)"
    )
    h = out["new_work_waiting_no_history"]
    print(
        f"  (with them waiting, before the bulk history: first step p50 {h['first_step_p50_ms']} ms, "
        f"{h['exec_per_s']} executions/s)"
    )
    print(f"worker RSS KiB: before {out['rss_kib_before']}, after {out['rss_kib_after']}")
    print(f"\n{'admin page':<32}{'ms':>8}{'min ms':>8}{'queries':>9}{'slowest q ms':>14}")
    for name, row in out["admin"].items():
        print(f"{name:<32}{row['ms']:>8}{row['min_ms']:>8}{row['queries']:>9}{row['slowest_query_ms']:>14}")


# DBOS's side (in a process of its own).


def dbos_child(database_url: str, workflows: int) -> None:
    import threading

    import sqlalchemy as sa
    from dbos import DBOS, DBOSConfig
    from dbos import _dbos as dbos_internals

    from bench.dbos_side import NEEDS_SHIM, _install_shim
    from bench.dbos_workers import _normalise_url

    url, database = _normalise_url(database_url)
    if database == "sqlite":
        if NEEDS_SHIM:  # SQLite < 3.42: DBOS's unixepoch('subsec'), as bench/dbos_workers.py does
            sa.event.listen(sa.engine.Engine, "connect", _install_shim)

        def set_synchronous(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")  # as ours

        sa.event.listen(sa.engine.Engine, "connect", set_synchronous)
        import sqlite3

        pre = sqlite3.connect(sa.make_url(url).database)
        pre.execute("PRAGMA journal_mode=WAL").fetchone()
        pre.close()

    @DBOS.step()
    def sc_step(i: int) -> int:
        return i

    @DBOS.workflow()
    def sc_steps(n: int) -> int:
        for i in range(n):
            sc_step(i)
        return n

    @DBOS.workflow()
    def sc_sleep(seconds: float) -> None:
        sc_step(0)
        DBOS.sleep(seconds)

    @DBOS.workflow()
    def sc_recv(topic: str) -> Any:
        sc_step(0)
        return DBOS.recv(topic, timeout_seconds=YEAR)

    config: DBOSConfig = {
        "name": "dbos-bench-scale",
        "system_database_url": url,
        "log_level": "WARNING",
        "enable_otlp": False,
    }
    DBOS(config=config)
    DBOS.launch()
    engine = dbos_internals._get_dbos_instance()._sys_db.engine

    def size() -> int:
        with engine.connect() as conn:
            if database == "sqlite":
                return int(conn.exec_driver_sql("SELECT coalesce(sum(pgsize), 0) FROM dbstat").scalar() or 0)
            conn.exec_driver_sql("ANALYZE")
            return int(
                conn.exec_driver_sql(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = 'dbos'"
                ).scalar()
                or 0
            )

    result: dict[str, Any] = {"workflows": workflows, "database": database}
    import importlib.metadata

    result["dbos_version"] = importlib.metadata.version("dbos")
    runs = 50
    grown = {}
    for steps in (1, 21):
        before = size()
        for handle in [DBOS.start_workflow(sc_steps, steps) for _ in range(runs)]:
            handle.get_result()
        grown[steps] = size() - before
    result["bytes_per_step"] = round((grown[21] - grown[1]) / (20 * runs))
    result["bytes_per_1_step_workflow"] = round(grown[1] / runs)

    before = size()
    rng = random.Random(19)
    ids = []
    for i in range(workflows):
        if i % 2:
            ids.append(DBOS.start_workflow(sc_sleep, rng.randrange(86400, YEAR)).get_workflow_id())
        else:
            ids.append(DBOS.start_workflow(sc_recv, f"topic-{i}").get_workflow_id())
    # Each is waiting once its step and its sleep (or recv's timeout) are recorded.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if all(len(DBOS.list_workflow_steps(i)) >= 2 for i in ids):
            break
        time.sleep(0.2)
    else:
        raise TimeoutError("DBOS workflows did not reach their waits")
    time.sleep(0.5)
    result["bytes_per_waiting_workflow"] = round((size() - before) / workflows)
    result["threads"] = threading.active_count()
    print(json.dumps(result), flush=True)
    os._exit(0)  # the waiting workflows' threads would keep DBOS.destroy() waiting


if __name__ == "__main__":
    main()
