"""Where new work's time goes beside many waiting executions (issue 19): each statement of one
execution's life, timed, with few and with many waiting.

In this process (no worker processes, so nothing else competes): --executions of
bench.scale_workflows.scale_new are started through `start_execution` and run through
`run_invocation` one after the other, on the empty database, then again once --waiting
executions wait (copied in bulk as bench/scale.py does, --history events), then a sweep. On
SQLite the empty database's rounds alternate with the waiting one's (a copy of the empty file
made before the bulk load): whatever else runs on the machine weighs on both alike. Every
statement is timed through `connection.execute_wrapper` (COMMIT included: Django's commit goes
around it, so the transactions' commits are timed by wrapping the connection's `commit`), grouped
by its text, and printed: calls per execution and mean microseconds, empty then waiting, the
biggest growth first. EXPLAIN QUERY PLAN / EXPLAIN of the sweep's queries is printed at the end.

SQLite also prints the WAL frames (pages written) and the distinct pages per execution, by table
and index (the WAL's frames mapped through dbstat); PostgreSQL the WAL bytes per execution after
a CHECKPOINT (a page's first change after one is written whole) and the buffers read and hit.

Usage: python bench/scale_profile.py [--waiting 20000] [--executions 300] [--rounds 3]
       [--history N] [--foreign-writer] [--drop INDEX ...] [--json FILE]
       (scripts/with-postgres ... for PostgreSQL)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def shape(sql: str) -> str:
    """A statement's text with its IN lists and VALUES groups folded (one key per statement)."""
    sql = re.sub(r"\((?:%s, )+%s\)", "(%s...)", sql)
    sql = re.sub(r"(\(%s\.\.\.\))(?:, \(%s\.\.\.\))+", r"\1,...", sql)
    return re.sub(r"\s+", " ", sql)


class Timer:
    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = shape(sql)
            self.total[key] += time.perf_counter() - started
            self.calls[key] += 1


FOREIGN_WRITER = False
_foreign: dict[str, Any] = {}


def foreign_write(path: str) -> None:
    """A write from another connection after each commit, as another worker process's: SQLite
    then drops this connection's page cache at its next transaction (each page is read again)."""
    import sqlite3

    if path not in _foreign:
        _foreign[path] = sqlite3.connect(path, isolation_level=None)
        _foreign[path].execute("CREATE TABLE IF NOT EXISTS bench_foreign (n INTEGER)")
        _foreign[path].execute("INSERT INTO bench_foreign VALUES (0)")
    _foreign[path].execute("UPDATE bench_foreign SET n = n + 1")


@contextmanager
def timed(timer: Timer) -> Iterator[None]:
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection
    original = connection._commit  # type: ignore[attr-defined]

    def commit() -> None:
        started = time.perf_counter()
        try:
            original()
        finally:
            timer.total["COMMIT"] += time.perf_counter() - started
            timer.calls["COMMIT"] += 1
            if FOREIGN_WRITER and connection.vendor == "sqlite":
                foreign_write(connection.settings_dict["NAME"])

    connection._commit = commit  # type: ignore[attr-defined]
    try:
        with connection.execute_wrapper(timer):
            yield
    finally:
        connection._commit = original  # type: ignore[attr-defined]
        assert raw is connection.connection


def run_new_work(count: int) -> tuple[Timer, dict[str, float]]:
    from bench import scale_workflows as wf
    from durable.client import start_execution
    from durable.models import Execution
    from durable.runtime import run_invocation

    timer = Timer()
    phases: dict[str, float] = defaultdict(float)
    with timed(timer):
        cpu = time.process_time()
        for _ in range(count):
            started = time.perf_counter()
            pk = str(start_execution(wf.scale_new, {}).pk)
            middle = time.perf_counter()
            run_invocation(pk)
            phases["start_execution"] += middle - started
            phases["run_invocation"] += time.perf_counter() - middle
        phases["cpu (process time)"] = time.process_time() - cpu
    assert Execution.objects.filter(function_name=wf.scale_new.name, status="SUCCEEDED").count() >= count
    return timer, {k: v / count * 1e6 for k, v in phases.items()}


LAST_FRAMES: dict[str, float] = {}  # distinct pages per execution, by b-tree
LAST_WRITTEN: dict[str, float] = {}  # pages written (WAL frames) per execution, by b-tree


def wal_frames(database: str, count: int = 50) -> float:
    """SQLite: WAL frames (pages) written per execution of new work, the automatic
    checkpoint held off for the count."""
    from django.db import connection

    if database != "sqlite":
        return pg_io(count)
    path = Path(connection.settings_dict["NAME"] + "-wal")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        run_new_work(count)
        frames = (path.stat().st_size - 32) / (24 + 4096)
        data = path.read_bytes()
        pages: dict[int, int] = defaultdict(int)
        for offset in range(32, len(data) - 24, 24 + 4096):
            pages[int.from_bytes(data[offset : offset + 4])] += 1
        cursor.execute("SELECT name, pageno FROM dbstat")
        owner = {pageno: name for name, pageno in cursor.fetchall()}
        by_tree: dict[str, int] = defaultdict(int)
        written: dict[str, int] = defaultdict(int)
        for pageno, times in pages.items():
            by_tree[owner.get(pageno, "?")] += 1
            written[owner.get(pageno, "?")] += times
        LAST_FRAMES.clear()
        LAST_FRAMES.update({k: round(v / count, 2) for k, v in by_tree.items()})
        LAST_WRITTEN.clear()
        LAST_WRITTEN.update({k: round(v / count, 2) for k, v in written.items()})
        distinct = len(pages)
        LAST_FRAMES["(distinct pages)"] = round(distinct / count, 1)
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return round(frames / count, 1)


def pg_io(count: int) -> float:
    """PostgreSQL: WAL bytes per execution of new work right after a CHECKPOINT (a page's first
    change after one writes the whole page: the distinct pages show), and the blocks read from
    outside shared buffers and found in them per execution (LAST_FRAMES)."""
    from django.db import connection

    def stats(cursor: Any) -> tuple[int, int, int]:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, blks_read, blks_hit FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        wal, read, hit = cursor.fetchone()
        return int(wal), int(read), int(hit)

    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")
        time.sleep(1)
        before = stats(cursor)
        run_new_work(count)
        time.sleep(1)
        after = stats(cursor)
    LAST_FRAMES.clear()
    LAST_FRAMES.update({"blocks read": (after[1] - before[1]) / count, "blocks hit": (after[2] - before[2]) / count})
    LAST_WRITTEN.clear()
    return round((after[0] - before[0]) / count)


def make_templates(count: int) -> dict[str, list[str]]:
    """Waiting executions through the public API, each run in this process until it waits."""
    import random

    from bench import scale_workflows as wf
    from durable.client import start_execution
    from durable.runtime import run_invocation

    rng = random.Random(19)
    kinds: dict[str, list[str]] = {"timer": [], "callback": [], "soon": []}
    for i in range(count):
        if i % 2:
            pk = str(start_execution(wf.scale_timer, {"seconds": rng.randrange(86400, 365 * 86400)}).pk)
            kinds["timer"].append(pk)
        else:
            event = {"timeout": 30 * 86400} if i % 4 == 0 else {}
            pk = str(start_execution(wf.scale_callback, event).pk)
            kinds["callback"].append(pk)
        run_invocation(pk)
    return kinds


def sweep_timer() -> Timer:
    from durable.sweep import sweep

    timer = Timer()
    with timed(timer):
        for _ in range(20):
            sweep()
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiting", type=int, default=20000)
    parser.add_argument("--executions", type=int, default=300)
    parser.add_argument("--history", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3, help="alternate measurements (medians)")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument(
        "--foreign-writer", action="store_true", help="SQLite: another connection writes after each commit"
    )
    parser.add_argument("--drop", action="append", default=[], help="(experiment) drop this index after migrating")
    args = parser.parse_args()
    global FOREIGN_WRITER
    FOREIGN_WRITER = args.foreign_writer
    workdir = tempfile.mkdtemp(prefix="bench-scale-profile-")
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{os.path.join(workdir, 'journal.sqlite3')}"
    database = "postgresql" if os.environ["DATABASE_URL"].startswith("postgres") else "sqlite"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_LOG_LEVEL="WARNING",
        DJANGO_DEBUG="false",
        DURABLE_SWEEP_INTERVAL="1",
    )
    from tests.processes import RedisServer

    redis_server = RedisServer().start()
    os.environ["REDIS_URL"] = redis_server.url
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from django.db import connection

        with connection.cursor() as cursor:
            for index in args.drop:
                cursor.execute(f"DROP INDEX {index}")
        from bench.scale import add_history, analyze, copy_waiting

        run_new_work(30)  # warm-up
        interleave = database == "sqlite"
        main_file = connection.settings_dict["NAME"]
        empty_file = main_file.replace(".sqlite3", "-empty.sqlite3")

        def use(name: str) -> None:
            connection.close()
            connection.settings_dict["NAME"] = name

        if interleave:
            # A copy of the empty database: its rounds alternate with the waiting one's, so that
            # whatever else runs on the machine weighs on both alike.
            analyze(database)
            connection.close()
            shutil.copyfile(main_file, empty_file)
            empty = []
        else:
            empty = [run_new_work(args.executions) for _ in range(args.rounds)]
        sweep_empty = sweep_timer()
        frames_empty = wal_frames(database)
        trees_empty, written_empty = dict(LAST_FRAMES), dict(LAST_WRITTEN)
        templates = make_templates(40)
        started = time.perf_counter()
        copy_waiting(templates, args.waiting - 40)
        history = args.history if args.history is not None else 10 * args.waiting
        add_history(database, history)
        analyze(database)
        print(f"bulk load {time.perf_counter() - started:.1f} s", file=sys.stderr)
        run_new_work(30)
        waiting = []
        for _ in range(args.rounds):
            if interleave:
                use(empty_file)
                empty.append(run_new_work(args.executions))
                use(main_file)
            waiting.append(run_new_work(args.executions))
        sweep_waiting = sweep_timer()
        print(
            f"WAL pages (PostgreSQL: bytes) written per execution (then distinct pages by tree): "
            f"{frames_empty} -> {wal_frames(database)}"
        )
        print("  distinct pages, empty -> waiting; WAL frames, empty -> waiting; by b-tree")
        for name in sorted(set(trees_empty) | set(LAST_FRAMES), key=lambda n: -LAST_FRAMES.get(n, 0)):
            print(
                f"  {trees_empty.get(name, 0):7.1f} -> {LAST_FRAMES.get(name, 0):7.1f}"
                f"  {written_empty.get(name, 0):7.1f} -> {LAST_WRITTEN.get(name, 0):7.1f}  {name}"
            )
        report(database, args, empty, waiting, sweep_empty, sweep_waiting)
        plans(database)
    finally:
        redis_server.stop()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def report(
    database: str,
    args: Any,
    empty: list[tuple[Timer, dict[str, float]]],
    waiting: list[tuple[Timer, dict[str, float]]],
    sweep_empty: Timer,
    sweep_waiting: Timer,
) -> None:
    n = args.executions

    def per(runs: list[tuple[Timer, dict[str, float]]], key: str) -> tuple[float, float]:
        calls = runs[0][0].calls.get(key, 0) / n
        mean = _median([r[0].total.get(key, 0.0) / n * 1e6 for r in runs])
        return calls, mean

    keys = set().union(*(r[0].total for r in empty + waiting))
    rows = []
    for key in keys:
        c0, t0 = per(empty, key)
        c1, t1 = per(waiting, key)
        rows.append((t1 - t0, key, c0, t0, c1, t1))
    rows.sort(reverse=True)
    print(f"\n{database}: {args.waiting} waiting; per execution of new work (median of {args.rounds} rounds)")
    for phase in ("start_execution", "run_invocation", "cpu (process time)"):
        a = _median([r[1][phase] for r in empty])
        b = _median([r[1][phase] for r in waiting])
        print(f"  {phase:<16} {a:8.0f} -> {b:8.0f} us ({b / a:.2f}x)")
    sql0 = sum(r[3] for r in rows)
    sql1 = sum(r[5] for r in rows)
    print(f"  all statements   {sql0:8.0f} -> {sql1:8.0f} us")
    print(f"\n{'us/exec empty':>14}{'waiting':>9}{'delta':>8}{'calls':>7}  statement")
    for delta, key, _c0, t0, c1, t1 in rows:
        print(f"{t0:14.1f}{t1:9.1f}{delta:+8.1f}{c1:7.2f}  {key[:150]}")
    print("\nsweep, 20 runs: us per run by statement, empty -> waiting")
    for key in sorted(set(sweep_empty.total) | set(sweep_waiting.total)):
        a = sweep_empty.total.get(key, 0) / 20 * 1e6
        b = sweep_waiting.total.get(key, 0) / 20 * 1e6
        print(f"  {a:8.1f} -> {b:8.1f}  {key[:140]}")
    if args.json:
        Path(args.json).write_text(json.dumps([{"key": r[1], "empty_us": r[3], "waiting_us": r[5]} for r in rows]))


def plans(database: str) -> None:
    """The sweep's queries' plans, and the lease's."""
    from django.db import connection

    from durable import clock
    from durable.store.base import due_query, expired_leases_query, timed_out_query

    now = clock.now()
    print("\nplans:")
    for name, qs in (
        ("due", due_query(now).values_list("pk", "wake_at")[:100]),
        ("expired leases", expired_leases_query(now).values_list("pk")[:100]),
        ("timed out", timed_out_query(now).values_list("pk")[:100]),
    ):
        sql, params = qs.query.sql_with_params()
        prefix = "EXPLAIN QUERY PLAN " if database == "sqlite" else "EXPLAIN "
        with connection.cursor() as cursor:
            cursor.execute(prefix + sql, params)
            print(f"  {name}: " + " | ".join(str(row[-1]) for row in cursor.fetchall()))


if __name__ == "__main__":
    main()
