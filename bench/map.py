"""A map of 1,000 trivial items: time and database writes per item, ours beside DBOS's fan-out.

Ours: one invocation of a handler whose `context.map` runs N items, each one trivial step
(returns {"i": i}), with the default config (no max_concurrency: every item in flight, on at
most 32 threads). Measured: wall time of the invocation (lease to final write) per item, write
transactions per item (the engine's own count of journal writes), and SQL statements per item
(a connection wrapper on the invocation's connection, which makes every journal write). Then a
replay: the handler waits after the map, and the next invocation rebuilds the completed map
from the journal (its envelope and the items' rows) and runs one step. The same two with
NestingType.FLAT (no context per item; its replay runs each item's body again over its step).

DBOS 3.4, two fan-outs its documentation teaches: a workflow that enqueues N steps on a Queue
and gathers their results (each enqueued step becomes a child workflow; the queue polls every
0.1 s, default 1 s), and a workflow that starts N child workflows (`DBOS.start_workflow`, each
running the one step) and gathers them. Measured: wall time of the workflow per item, and
statements and write transactions per item on DBOS's engine, counted on every thread (its
queue runner and child workflows write too).

Both run on a fresh SQLite file (WAL) or, under scripts/with-postgres, on that PostgreSQL.
Usage: python bench/map.py [--items 1000] [--rounds 3] [--no-dbos]
"""

from __future__ import annotations

import argparse
import json
import os
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
sys.path.insert(0, str(ROOT / "bench"))
POSTGRES_URL = os.environ.get("DATABASE_URL", "") if os.environ.get("DATABASE_URL", "").startswith("postgres") else ""


def measure_ours(items: int, rounds: int) -> dict[str, Any]:
    from django.db import connection
    from steps import QueryCounter

    from durable import DurableContext, MapConfig, NestingType, durable_execution
    from durable.client import start_execution
    from durable.clock import FakeClock, use_clock
    from durable.config import Duration
    from durable.models import Execution
    from durable.runtime import run_invocation

    @durable_execution(name="bench.map")
    def fan_out(event: dict[str, Any], context: DurableContext) -> int:
        def item(ctx: DurableContext, i: int, _: int, __: Any) -> Any:
            return ctx.step(lambda _: {"i": i}, name="item")

        nesting = NestingType.FLAT if event.get("flat") else NestingType.NESTED
        config = MapConfig(max_concurrency=event.get("concurrency"), nesting_type=nesting)
        result = context.map(list(range(event["n"])), item, name="fan out", config=config)
        if event.get("wait"):
            context.wait(Duration(1), name="pause")
            context.step(lambda _: None, name="after")
        return result.success_count

    clock = FakeClock()

    def invoke(execution_id: str) -> tuple[float, int, int]:
        counter = QueryCounter()
        with connection.execute_wrapper(counter):
            started = time.perf_counter()
            outcome = run_invocation(execution_id)
            took = time.perf_counter() - started
        return took, outcome.checkpoints, counter.count

    runs: dict[str, list[tuple[float, int, int]]] = {
        "first": [],
        "replay": [],
        "one_at_a_time": [],
        "flat_first": [],
        "flat_replay": [],
    }
    with use_clock(clock):
        invoke(str(start_execution(fan_out, {"n": 10}).pk))  # warm-up
        for _ in range(rounds):
            runs["first"].append(invoke(str(start_execution(fan_out, {"n": items}).pk)))
            serial = start_execution(fan_out, {"n": items, "concurrency": 1})
            runs["one_at_a_time"].append(invoke(str(serial.pk)))
            runs["flat_first"].append(invoke(str(start_execution(fan_out, {"n": items, "flat": True}).pk)))
            for prefix, flat in (("", False), ("flat_", True)):
                waiting = str(start_execution(fan_out, {"n": items, "wait": True, "flat": flat}).pk)
                invoke(waiting)
                clock.advance_to(clock.current + timedelta(seconds=2))
                runs[f"{prefix}replay"].append(invoke(waiting))
                assert Execution.objects.get(pk=waiting).status == "SUCCEEDED"

    def summary(kind: str) -> dict[str, float]:
        took, writes, statements = (statistics.median(r[i] for r in runs[kind]) for i in range(3))
        return {
            "seconds": round(took, 4),
            "ms_per_item": round(took * 1000 / items, 4),
            "write_txns_per_item": round(writes / items, 4),
            "statements_per_item": round(statements / items, 4),
        }

    return {"engine": "ours", "vendor": connection.vendor, **{k: summary(k) for k in runs}}


def measure_dbos(items: int, rounds: int, workdir: str, database_url: str | None) -> dict[str, Any]:
    import sqlite3

    import sqlalchemy as sa
    from dbos import DBOS, DBOSConfig
    from dbos_side import NEEDS_SHIM, _install_shim, _Tap

    if NEEDS_SHIM:  # this SQLite lacks unixepoch('subsec'), which DBOS 3.4 uses (see dbos_side.py)
        sa.event.listen(sa.engine.Engine, "connect", _install_shim)

    queues: dict[str, Any] = {}

    @DBOS.step()
    def item_step(i: int) -> dict[str, int]:
        return {"i": i}

    @DBOS.workflow()
    def fan_out(n: int) -> int:
        handles = [queues["q"].enqueue(item_step, i) for i in range(n)]
        return sum(1 for h in handles if h.get_result(polling_interval_sec=0.01) is not None)

    @DBOS.workflow()
    def item_workflow(i: int) -> dict[str, int]:
        return item_step(i)

    @DBOS.workflow()
    def fan_out_started(n: int) -> int:
        handles = [DBOS.start_workflow(item_workflow, i) for i in range(n)]
        return sum(1 for h in handles if h.get_result(polling_interval_sec=0.01) is not None)

    db_path = os.path.join(workdir, "dbos_sys.sqlite")
    if database_url is None:
        pre = sqlite3.connect(db_path)
        pre.execute("PRAGMA journal_mode=WAL").fetchone()
        pre.close()
    config: DBOSConfig = {
        "name": "dbos-map-bench",
        "system_database_url": database_url or f"sqlite:///{db_path}",
        "log_level": "WARNING",
        "enable_otlp": False,
    }
    DBOS(config=config)
    DBOS.launch()
    try:
        from dbos import _dbos as internals

        queues["q"] = DBOS.register_queue("bench-map", polling_interval_sec=0.1)
        engine: sa.Engine = internals._get_dbos_instance()._sys_db.engine
        results: dict[str, list[tuple[float, int, int]]] = {"queue": [], "start_workflow": []}
        for kind, workflow in (("queue", fan_out), ("start_workflow", fan_out_started)):
            assert workflow(10) == 10  # warm-up
            for _ in range(rounds):
                with _Tap(engine) as tap:
                    started = time.perf_counter()
                    assert workflow(items) == items
                    took = time.perf_counter() - started
                statements = sum(1 for _, _, what in tap.events if what == "stmt")
                writes = sum(1 for _, _, what in tap.events if what == "write_commit")
                results[kind].append((took, writes, statements))
    finally:
        DBOS.destroy()

    def summary(kind: str) -> dict[str, float]:
        took, writes, statements = (statistics.median(r[i] for r in results[kind]) for i in range(3))
        return {
            "seconds": round(took, 4),
            "ms_per_item": round(took * 1000 / items, 4),
            "write_txns_per_item": round(writes / items, 4),
            "statements_per_item": round(statements / items, 4),
        }

    return {"engine": "dbos", **{kind: summary(kind) for kind in results}}


def child(kind: str, items: int, rounds: int) -> None:
    workdir = tempfile.mkdtemp(prefix=f"bench-map-{kind}-")
    if kind == "ours":
        from steps import setup_django

        setup_django(os.path.join(workdir, "journal.sqlite3"), "NORMAL")
        print(json.dumps(measure_ours(items, rounds)))
    else:
        url = POSTGRES_URL.replace("postgres://", "postgresql://", 1) or None
        if url:  # a database of its own on that server, so DBOS's tables start empty
            url = _fresh_postgres_database(url)
        print(json.dumps(measure_dbos(items, rounds, workdir, url)))


def _fresh_postgres_database(url: str) -> str:
    import sqlalchemy as sa

    name = f"dbos_map_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-dbos", action="store_true")
    parser.add_argument("--child", choices=["ours", "dbos"])
    args = parser.parse_args()
    if args.child:
        child(args.child, args.items, args.rounds)
        return
    rows = []
    for kind in ("ours",) if args.no_dbos else ("ours", "dbos"):
        # Each engine in a process of its own: Django and DBOS each own their settings.
        out = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--items", str(args.items), "--rounds", str(args.rounds)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    where = "PostgreSQL" if POSTGRES_URL else "SQLite (WAL, synchronous=NORMAL for ours)"
    print(f"map of {args.items} trivial items on {where}, median of {args.rounds} rounds\n")
    header = f"{'engine':<6} {'run':<14} {'seconds':>8} {'ms/item':>8} {'write txns/item':>16} {'statements/item':>16}"
    print(header)
    print("-" * len(header))
    for row in rows:
        for run, m in row.items():
            if isinstance(m, dict):
                print(
                    f"{row['engine']:<6} {run:<14} {m['seconds']:>8.3f} {m['ms_per_item']:>8.3f} "
                    f"{m['write_txns_per_item']:>16.3f} {m['statements_per_item']:>16.3f}"
                )


if __name__ == "__main__":
    main()
