"""Workers on a real Redis: throughput, callback-to-resume latency, timer lateness; and DBOS.

On the database in DATABASE_URL (PostgreSQL: run under scripts/with-postgres) or a fresh SQLite
file, for our in-process worker (the default) with each worker count in --workers (and RQ's
forking worker with --fork):
* executions per second: N executions of a 3-step workflow, started at once, until the last
  ended (its `ended_at`);
* callback-to-resume latency: time from send_callback_success to the resumed step running;
* timer lateness: how long after a 2-second wait ends the next step runs.
With --dbos, DBOS 3.4 does the same work on the same database with the same concurrency
(bench/dbos_workers.py, in a process of its own), and the ratios are printed. Throughput is
measured in --rounds rounds, each ours then DBOS; the tables show medians.

Usage: python bench/workers.py [--executions 500] [--samples 20] [--workers 1,2,4] [--rounds 5] [--fork] [--dbos]
       [--only timers] [--timer-spacing 0.05] [--engine-only] [--listen]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=500)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="throughput rounds (ours, then DBOS) per count: the rows are their medians",
    )
    parser.add_argument("--fork", action="store_true", help="also measure RQ's forking worker")
    parser.add_argument("--dbos", action="store_true", help="also measure DBOS on the same database")
    parser.add_argument("--only", choices=("timers",), help="measure timer lateness only (no throughput, no callbacks)")
    parser.add_argument(
        "--timer-spacing",
        type=float,
        default=0.0,
        help="seconds between the timer samples' starts (0: all at once, so that they come due in a burst)",
    )
    parser.add_argument(
        "--engine-only",
        action="store_true",
        help="the engine's own settings (tests.durable.settings): no product, so no receiver and no outbox",
    )
    parser.add_argument(
        "--listen",
        action="store_true",
        help="a receiver of the status changes of the bench's functions in every process (bench/workflows.py), so "
        "that each is an event of the outbox, written and delivered (the product's own receiver follows only "
        "its document workflow)",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]

    workdir = tempfile.mkdtemp(prefix="bench-workers-")
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{os.path.join(workdir, 'journal.sqlite3')}"
    database = "postgresql" if os.environ["DATABASE_URL"].startswith("postgres") else "sqlite"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tests.durable.settings" if args.engine_only else "config.settings",
        DJANGO_LOG_LEVEL="WARNING",
        # As in production: with DEBUG on, Django records every query (and on SQLite runs an
        # extra query to quote each one's parameters), a cost DBOS does not pay.
        DJANGO_DEBUG="false",
        DURABLE_SWEEP_INTERVAL="1",
    )
    if args.listen:
        os.environ["BENCH_LISTEN"] = "1"  # read by bench/workflows.py in this process and the workers
    from rq import Worker as RQWorker

    from tests.processes import RedisServer, Worker, wait_until

    redis_server = RedisServer().start()
    os.environ["REDIS_URL"] = redis_server.url
    import django

    django.setup()
    from django.core.management import call_command
    from django.db.models import Max

    call_command("migrate", verbosity=0)
    from bench import workflows
    from durable.client import send_callback_success, start_execution
    from durable.models import Execution, Operation

    def all_done(ids: list[str]) -> bool:
        return not Execution.objects.filter(pk__in=ids, status="RUNNING").exists()

    rows: list[dict] = []
    ratios: list[dict] = []
    try:
        for fork in (False, True) if args.fork else (False,):
            for count in counts:
                redis_server.client().flushall()
                extra = ["--fork"] if fork else []
                pool = [
                    Worker(dict(os.environ), f"bench-{'fork' if fork else 'inproc'}-{count}-{i}", extra)
                    for i in range(count)
                ]
                # Start the clock only once every worker has registered with Redis.
                wait_until(
                    lambda count=count: len(RQWorker.all(connection=redis_server.client())) >= count,
                    60,
                    interval=0.05,
                    message="workers to register",
                )
                # Warm up every worker (imports, database connections), as DBOS gets five
                # workflows before its clock starts.
                warm = [str(start_execution(workflows.three_steps, {}).pk) for _ in range(5 * count)]
                wait_until(lambda warm=warm: all_done(warm), 60, interval=0.05, message="warm-up")
                # This machine is shared and noisy: each round measures ours, then DBOS on the
                # same database, and the medians (and the median of the rounds' ratios) count.
                rates, theirs, cpu, starts = [], [], [], []
                for round_ in range(0 if args.only else args.rounds):
                    cpu_before = cpu_parts(pool, redis_server)
                    started = time.time()
                    ids = [str(start_execution(workflows.three_steps, {}).pk) for _ in range(args.executions)]
                    starting = time.time() - started  # this process's starts, beside the workers
                    wait_until(lambda ids=ids: all_done(ids), 600, interval=0.05, message="throughput run")
                    # Until the last one ended, as its row says (the same machine's clock): not
                    # until this poll saw it, up to an interval later (DBOS's threads note the
                    # moment each workflow returns).
                    last = Execution.objects.filter(pk__in=ids).aggregate(last=Max("ended_at"))["last"]
                    rates.append(args.executions / (last.timestamp() - started))
                    starts.append(starting / (last.timestamp() - started))
                    cpu_after = cpu_parts(pool, redis_server)
                    cpu.append({k: (cpu_after[k] - cpu_before[k]) * 1000 / args.executions for k in cpu_after})
                    failed = Execution.objects.filter(pk__in=ids).exclude(status="SUCCEEDED").count()
                    assert not failed, f"{failed} executions did not succeed"
                    if args.dbos and not fork:
                        samples = args.samples if round_ == 0 else 1  # latencies once; rates each round
                        theirs.append(dbos_row(database, workdir, count, args.executions, samples, round_))
                throughput = statistics.median(rates) if rates else float("nan")
                if theirs:
                    dbos_rates = [r["exec_per_s"] for r in theirs]
                    ratios.append(
                        {
                            "workers": count,
                            "ours": rates,
                            "dbos": dbos_rates,
                            "ratio": statistics.median(a / b for a, b in zip(rates, dbos_rates, strict=True)),
                        }
                    )
                    rows.append({**theirs[0], "exec_per_s": statistics.median(dbos_rates)})

                waiting = [
                    str(start_execution(workflows.approval, {}).pk) for _ in range(0 if args.only else args.samples)
                ]
                latencies = []
                for execution_id in waiting:
                    callback_id = wait_until(
                        lambda e=execution_id: (
                            Operation.objects.filter(execution_id=e, type="CALLBACK", status="STARTED")
                            .values_list("callback_id", flat=True)
                            .first()
                        ),
                        60,
                        message="callback",
                    )
                    wait_until(
                        lambda e=execution_id: Execution.objects.filter(pk=e, lease_token__isnull=True).exists(), 30
                    )
                    sent = time.time()
                    send_callback_success(callback_id, "ok")
                    wait_until(lambda e=execution_id: all_done([e]), 60, interval=0.005, message="resume")
                    latencies.append(json.loads(Execution.objects.get(pk=execution_id).result) - sent)

                timers = []
                for _ in range(args.samples):
                    timers.append(str(start_execution(workflows.timer, {"seconds": 2}).pk))
                    time.sleep(args.timer_spacing)
                wait_until(lambda timers=timers: all_done(timers), 120, message="timers")
                lateness, to_wait, past_due, dues, afters = [], [], [], [], []
                for execution_id in timers:
                    before = json.loads(Operation.objects.get(execution_id=execution_id, name="before").result)
                    after = json.loads(Operation.objects.get(execution_id=execution_id, name="after").result)
                    wait = Operation.objects.get(execution_id=execution_id, name="timer")
                    lateness.append(after - before - 2)
                    # Where it goes: from the step before to the wait's start (its checkpoint),
                    # and from the wait's end (its wake-up time) to the step after.
                    to_wait.append(wait.started_at.timestamp() - before)
                    past_due.append(after - wait.wait_until.timestamp())
                    dues.append(wait.wait_until.timestamp())
                    afters.append(after)
                for worker in pool:
                    worker.stop()
                rows.append(
                    {
                        "worker": "ours, forking" if fork else "ours",
                        "workers": count,
                        "exec_per_s": throughput,
                        "cpu_ms": {k: statistics.median(c[k] for c in cpu) for k in cpu[0]} if cpu else {},
                        "starting": statistics.median(starts) if starts else float("nan"),
                        "cb_p50_ms": percentile(latencies, 50) * 1000 if latencies else float("nan"),
                        "cb_p95_ms": percentile(latencies, 95) * 1000 if latencies else float("nan"),
                        "timer_p50_ms": percentile(lateness, 50) * 1000,
                        "timer_p95_ms": percentile(lateness, 95) * 1000,
                        "to_wait_p50_ms": percentile(to_wait, 50) * 1000,
                        "past_due_p50_ms": percentile(past_due, 50) * 1000,
                        "past_due_p95_ms": percentile(past_due, 95) * 1000,
                        **burst_pace(dues, afters),
                    }
                )
    finally:
        redis_server.stop()

    spacing = f", timers started {args.timer_spacing} s apart" if args.timer_spacing else ""
    project = (
        "engine only" if args.engine_only else "the product's settings (its receiver follows its document workflow)"
    )
    project += (
        ", a receiver of these functions' status changes (an outbox event each)"
        if args.listen
        else ", no receiver of these functions' status changes (no event)"
    )
    print(
        f"{database}, real Redis, {project}; {args.executions} executions of a 3-step workflow; "
        f"{args.samples} samples{spacing}\n"
    )
    header = (
        f"{'engine':<14}{'n':>2} {'exec/s':>8} {'cb p50 ms':>10} {'cb p95 ms':>10} "
        f"{'timer p50 ms':>13} {'timer p95 ms':>13}"
    )
    print(header)
    print("-" * len(header))
    rows.sort(key=lambda r: (r["worker"] == "DBOS", r["worker"], r["workers"]))
    for r in rows:
        print(
            f"{r['worker']:<14}{r['workers']:>2} {r['exec_per_s']:>8.1f} {r['cb_p50_ms']:>10.1f} "
            f"{r['cb_p95_ms']:>10.1f} {r['timer_p50_ms']:>13.1f} {r['timer_p95_ms']:>13.1f}"
        )
    print(
        "\ntimer lateness is the time from the step before the wait to the step after, less the 2 s;"
        "\nours splits into the step's checkpoint before the wait starts, and the time from the wake-up's"
        "\ndue time to the step after (the nap's overshoot and the replay: the timer mover queues a wake-up"
        "\nTIMER_LEAD_MS before its time, and the worker takes the lease and reads the journal before it):"
    )
    for r in rows:
        if "past_due_p50_ms" in r:
            print(
                f"  {r['worker']}, {r['workers']} worker(s): step to wait p50 {r['to_wait_p50_ms']:.1f} ms; "
                f"due to step p50 {r['past_due_p50_ms']:.1f} ms, p95 {r['past_due_p95_ms']:.1f} ms"
            )
    print(
        "the burst: its timers came due one every (median gap between due times), were resumed one every"
        "\n(median gap between the steps after), and the lateness of its first and last (in due order); when"
        "\nresuming takes longer than putting to sleep did, each timer waits for those ahead of it:"
    )
    for r in rows:
        if "due_gap_ms" in r:
            print(
                f"  {r['worker']}, {r['workers']} worker(s): due every {r['due_gap_ms']:.2f} ms, resumed every "
                f"{r['resume_gap_ms']:.2f} ms; late first {r['first_late_ms']:.1f} ms, last {r['last_late_ms']:.1f} ms"
            )
    for r in rows:
        if r.get("cpu_ms"):
            print(
                f"  {r['worker']}, {r['workers']} worker(s): CPU ms per execution "
                + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_ms"].items())
                + f", in all {sum(r['cpu_ms'].values()):.2f}; the starts took {r['starting']:.0%} of the run"
            )
    from django.db import connection

    if database == "sqlite":
        with connection.cursor() as cursor:
            ours = {p: cursor.execute(f"PRAGMA {p}").fetchone()[0] for p in ("journal_mode", "synchronous")}
        print(f"ours: {ours} (synchronous 1 = NORMAL)")
    for r in rows:
        if r.get("settings"):
            print(f"DBOS, {r['workers']} worker(s): {r['settings']}")
    for count in counts:
        ours = next(r for r in rows if r["worker"] == "ours" and r["workers"] == count)
        theirs = next((r for r in rows if r["worker"] == "DBOS" and r["workers"] == count), None)
        paired = next((r for r in ratios if r["workers"] == count), None)
        if theirs and paired:
            print(
                f"{count} worker(s): ours/DBOS executions per second {paired['ratio']:.2f} (median of rounds: "
                + ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(paired["ours"], paired["dbos"], strict=True))
                + f"), callback p50 {ours['cb_p50_ms'] / theirs['cb_p50_ms']:.2f}, timer lateness p50 "
                f"{ours['timer_p50_ms'] / max(theirs['timer_p50_ms'], 0.001):.2f}"
            )


def burst_pace(dues: list[float], afters: list[float]) -> dict[str, float]:
    """How a burst of timers came due and was resumed: the median gap between their due times
    (the pace at which the workers put them to sleep), the median gap between their steps after
    the wait (the pace at which they were resumed), and the lateness past due of the first and
    the last to come due. With one worker the burst comes due as fast as that worker put it to
    sleep, so if resuming costs it more, lateness grows along the burst: queueing, not a stall."""
    order = sorted(range(len(dues)), key=dues.__getitem__)
    due_sorted = [dues[i] for i in order]
    after_sorted = sorted(afters)

    def median_gap(values: list[float]) -> float:
        gaps = [b - a for a, b in itertools.pairwise(values)]
        return statistics.median(gaps) * 1000 if gaps else float("nan")

    return {
        "due_gap_ms": median_gap(due_sorted),
        "resume_gap_ms": median_gap(after_sorted),
        "first_late_ms": (afters[order[0]] - dues[order[0]]) * 1000,
        "last_late_ms": (afters[order[-1]] - dues[order[-1]]) * 1000,
    }


def cpu_parts(pool: list, redis_server: object) -> dict[str, float]:
    """CPU seconds used so far by this process (it starts the executions), the workers and Redis."""
    from bench.load import cpu_seconds

    usage = os.times()
    return {
        "starter": usage.user + usage.system,
        "workers": sum(cpu_seconds(w.process) for w in pool),
        "redis": cpu_seconds(redis_server.process),  # type: ignore[attr-defined]
    }


def dbos_row(database: str, workdir: str, count: int, executions: int, samples: int, round_: int = 0) -> dict:
    """DBOS in a process of its own, on the same database, with `count` workflows at a time."""
    import subprocess

    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    if database == "sqlite":
        url = f"sqlite:///{os.path.join(workdir, f'dbos-{count}-{round_}.sqlite3')}"
    command = [
        sys.executable,
        str(ROOT / "bench" / "dbos_workers.py"),
        *("--database-url", url, "--executions", str(executions)),
        *("--samples", str(samples), "--concurrency", str(count)),
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    keys = ("exec_per_s", "cb_p50_ms", "cb_p95_ms", "timer_p50_ms", "timer_p95_ms")
    settings = {k: result[k] for k in ("journal_mode", "synchronous", "fsync", "synchronous_commit") if k in result}
    return {"worker": "DBOS", "workers": count, "settings": settings, **{k: result[k] for k in keys}}


if __name__ == "__main__":
    main()
