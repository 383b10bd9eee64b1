"""Checkpoint overhead per step, replay time and queries per replay, ours beside DBOS's.

Both engines run on a fresh SQLite file in WAL mode in the same run. Ours is measured with
`synchronous=NORMAL` (our setting) and `FULL` (DBOS's default); DBOS likewise with both.

* ms per step: one invocation running N trivial steps (each returns {"i": i}) minus the same
  with 0 steps, divided by N; a warm-up execution first.
* replay: the handler runs N steps, then waits; the next invocation replays all N from the
  journal and runs one more step. Timed whole (lease, journal load, replay, final write).
* queries per replay: SQL statements of that invocation, counted by a connection wrapper.
* replay breakdown: the same replays cut into phases by timestamps (the lease; the journal's
  load; the handler replaying the N steps, and within it the decoding of their N results, timed
  apart on the same payloads; the one live step with its write; the final write; the rest), beside
  the floor: the journal's SELECT, exactly as the engine's load_journal sends it, run on the
  driver's own cursor (sqlite3 / psycopg) with fetchall, and that plus building the engine's
  records from the rows. On PostgreSQL the lease reads the journal in its own round trip: "load"
  is then 0 and "lease + load" is the figure to hold against the floor.

Usage: python bench/steps.py [--steps 1000] [--rounds 3] [--no-dbos]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Under scripts/with-postgres both engines use that PostgreSQL database instead of SQLite files.
POSTGRES_URL = os.environ.get("DATABASE_URL", "") if os.environ.get("DATABASE_URL", "").startswith("postgres") else ""


def setup_django(db_path: str, synchronous: str) -> None:
    if not POSTGRES_URL:
        os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DJANGO_LOG_LEVEL"] = "WARNING"
    # As in production: with DEBUG on, Django records every query, a cost DBOS does not pay.
    os.environ["DJANGO_DEBUG"] = "false"
    import django
    from django.conf import settings

    django.setup()
    if not POSTGRES_URL:
        options = settings.DATABASES["default"]["OPTIONS"]
        options["init_command"] = options["init_command"].replace("synchronous=NORMAL", f"synchronous={synchronous}")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


class QueryCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


class Phases:
    """Timestamps of one invocation's phases, taken by wrapping the store's entry points (a few
    calls per invocation: their cost is noise) and by the bench's handler itself."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    def install(self) -> None:
        from durable.store import base, leased

        store = base.SqlJournalStore
        for cls, name in ((store, "acquire_lease"), (store, "load_journal"), (leased.LeasedJournal, "finish")):
            original = getattr(cls, name)

            def timed(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
                self.marks[f"{_name}:start"] = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.marks[f"{_name}:end"] = time.perf_counter()

            setattr(cls, name, timed)

    def mark(self, name: str) -> None:
        self.marks[name] = time.perf_counter()

    def breakdown(self, total: float) -> dict[str, float]:
        m = self.marks
        phases = {
            "lease": m["acquire_lease:end"] - m["acquire_lease:start"],
            "load": m["load_journal:end"] - m["load_journal:start"] if "load_journal:end" in m else 0.0,
            "replay": m["replayed"] - m["handler"],
            "live step": m["returned"] - m["replayed"],
            "final write": m["finish:end"] - m["finish:start"],
        }
        phases["other"] = total - sum(phases.values())
        phases["lease + load"] = phases["lease"] + phases["load"]
        return phases


def driver_floor(execution_id: str) -> tuple[float, float]:
    """The journal's SELECT on the driver's own cursor, fetchall; and that plus the engine's
    records built from the rows (seconds)."""
    from django.db import connection

    from durable.store import sql

    statement, params = sql.statements().load_journal, [sql.execution_pk(execution_id)]
    if connection.vendor == "sqlite":
        statement = statement.replace("%s", "?")
    raw = connection.connection.cursor()
    started = time.perf_counter()
    raw.execute(statement, params)
    rows = raw.fetchall()
    fetched = time.perf_counter() - started
    raw.close()
    started = time.perf_counter()
    sql.records(rows)
    return fetched, fetched + time.perf_counter() - started


def decode_time(execution_id: str) -> float:
    """Decoding the journal's step results alone, as replay decodes them (seconds)."""
    from durable.models import Operation
    from durable.serdes import deserialize

    payloads = list(Operation.objects.filter(execution_id=execution_id, type="STEP").values_list("result", flat=True))
    started = time.perf_counter()
    for payload in payloads:
        if payload is not None:
            deserialize(None, payload, "op", execution_id)
    return time.perf_counter() - started


def measure_ours(steps: int, rounds: int) -> dict[str, Any]:
    from django.db import connection

    from durable import DurableContext, durable_execution
    from durable.client import start_execution
    from durable.clock import FakeClock, use_clock
    from durable.config import Duration
    from durable.models import Execution
    from durable.runtime import run_invocation

    phases = Phases()

    @durable_execution(name="bench.chain")
    def chain(event: dict[str, Any], context: DurableContext) -> int:
        phases.mark("handler")
        for i in range(event["n"]):
            context.step(lambda _, i=i: {"i": i}, name=f"s{i}")
        if event.get("wait"):
            phases.mark("replayed")
            context.wait(Duration(1), name="pause")
            context.step(lambda _: {"i": -1}, name="after")
            phases.mark("returned")
        return int(event["n"])

    clock = FakeClock()

    def run(n: int, wait: bool = False) -> tuple[str, float]:
        execution = start_execution(chain, {"n": n, "wait": wait})
        started = time.perf_counter()
        run_invocation(str(execution.pk))
        return str(execution.pk), time.perf_counter() - started

    per_step, replay_s, queries = [], [], []
    cuts: list[dict[str, float]] = []
    phases.install()
    with use_clock(clock):
        run(10)
        for _ in range(rounds):
            _, zero = run(0)
            _, full = run(steps)
            per_step.append((full - zero) * 1000 / steps)
            execution_id, _ = run(steps, wait=True)
            clock.advance_to(clock.current + timedelta(seconds=2))
            counter = QueryCounter()
            phases.marks.clear()
            with connection.execute_wrapper(counter):
                started = time.perf_counter()
                run_invocation(execution_id)
                replay_s.append(time.perf_counter() - started)
            queries.append(counter.count)
            assert Execution.objects.get(pk=execution_id).status == "SUCCEEDED"
            cut = phases.breakdown(replay_s[-1])
            cut["decode"] = decode_time(execution_id)
            cut["replay"] -= cut["decode"]
            cut["driver fetchall"], cut["driver + records"] = driver_floor(execution_id)
            cuts.append(cut)
        journal_mode, sync = "n/a", "n/a (postgresql)"
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode")
                journal_mode = cursor.fetchone()[0]
                cursor.execute("PRAGMA synchronous")
                sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cursor.fetchone()[0]]
    return {
        "engine": "ours",
        "journal_mode": journal_mode,
        "synchronous": sync,
        "ms_per_step": round(statistics.median(per_step), 4),
        "replay_seconds": round(statistics.median(replay_s), 4),
        "queries_per_replay": max(queries),
        "replay_breakdown_ms": {k: round(statistics.median(c[k] for c in cuts) * 1000, 2) for k in cuts[0]},
    }


def child(kind: str, steps: int, rounds: int, synchronous: str) -> None:
    workdir = tempfile.mkdtemp(prefix=f"bench-{kind}-")
    if kind == "ours":
        setup_django(os.path.join(workdir, "journal.sqlite3"), synchronous)
        print(json.dumps(measure_ours(steps, rounds)))
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        from dbos_side import measure_dbos

        url = POSTGRES_URL.replace("postgres://", "postgresql://", 1) or None
        results = [
            measure_dbos(steps, os.path.join(workdir, str(i)), None if url else synchronous, url) for i in range(rounds)
        ]
        print(
            json.dumps(
                {
                    "engine": "dbos",
                    "journal_mode": results[0]["journal_mode"],
                    "synchronous": results[0]["synchronous"],
                    "ms_per_step": round(statistics.median(r["ms_per_step"] for r in results), 4),
                    "replay_seconds": round(statistics.median(r["replay_seconds"] for r in results), 4),
                    "queries_per_replay": max(r["queries_per_replay"] for r in results),
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-dbos", action="store_true")
    parser.add_argument("--child", choices=["ours", "dbos"])
    parser.add_argument("--synchronous", default="NORMAL")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.rounds, args.synchronous)
        return
    import subprocess

    rows = []
    modes = ("n/a (postgresql)",) if POSTGRES_URL else ("NORMAL", "FULL")
    for synchronous in modes:
        for kind in ("ours",) if args.no_dbos else ("ours", "dbos"):
            # Each engine in a process of its own: Django and DBOS each own their settings.
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    kind,
                    "--steps",
                    str(args.steps),
                    "--rounds",
                    str(args.rounds),
                    "--synchronous",
                    synchronous,
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    where = "PostgreSQL" if POSTGRES_URL else "SQLite (WAL)"
    print(f"{args.steps}-step execution on {where}, median of {args.rounds} rounds\n")
    header = f"{'engine':<6} {'synchronous':<11} {'ms/step':>8} {'replay s':>9} {'queries/replay':>15}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['engine']:<6} {r['synchronous']:<11} {r['ms_per_step']:>8.3f} {r['replay_seconds']:>9.4f} "
            f"{r['queries_per_replay']:>15}"
        )
    print()
    for r in rows:
        if "replay_breakdown_ms" in r:
            cut = r["replay_breakdown_ms"]
            print(f"replay breakdown, ours, synchronous={r['synchronous']} (ms, medians):")
            print(
                "  "
                + ", ".join(f"{k} {cut[k]:.2f}" for k in ("lease", "load", "decode", "replay", "live step"))
                + f", final write {cut['final write']:.2f}, other {cut['other']:.2f}; lease + load "
                f"{cut['lease + load']:.2f}"
            )
            load = cut["load"] or cut["lease + load"]
            print(
                f"  floor: the same SELECT on the driver's cursor, fetchall {cut['driver fetchall']:.2f}; "
                f"with the records built {cut['driver + records']:.2f}; "
                f"{'load' if cut['load'] else 'lease + load'} / floor {load / cut['driver fetchall']:.2f}"
            )
    if not args.no_dbos:
        print()
        for synchronous in modes:
            ours = next(r for r in rows if r["engine"] == "ours" and r["synchronous"].startswith(synchronous[:3]))
            dbos = next(r for r in rows if r["engine"] == "dbos" and r["synchronous"].startswith(synchronous[:3]))
            print(
                f"synchronous={synchronous}: ours/DBOS ms per step {ours['ms_per_step'] / dbos['ms_per_step']:.2f}, "
                f"replay time {ours['replay_seconds'] / dbos['replay_seconds']:.2f}, "
                f"queries per replay {ours['queries_per_replay']} vs {dbos['queries_per_replay']}"
            )


if __name__ == "__main__":
    main()
