"""Workers on a real Redis and SQLite: throughput, callback-to-resume latency, timer lateness.

For our in-process worker (the default, on RQ's SimpleWorker) and RQ's forking worker, with one
and two workers:
* executions per second: N executions of a 3-step workflow, started at once, until all end;
* callback-to-resume latency: time from send_callback_success to the resumed step running;
* timer lateness: how long after a 2-second wait ends the next step runs.

Usage: python bench/workers.py [--executions 200] [--samples 20]
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="bench-workers-")
    db_path = os.path.join(workdir, "journal.sqlite3")
    os.environ.update(
        DATABASE_URL=f"sqlite:///{db_path}",
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_LOG_LEVEL="WARNING",
        DURABLE_SWEEP_INTERVAL="1",
    )
    from tests.processes import RedisServer, Worker, wait_until

    redis_server = RedisServer().start()
    os.environ["REDIS_URL"] = redis_server.url
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from bench import workflows
    from durable.client import send_callback_success, start_execution
    from durable.models import Execution, Operation

    def all_done(ids: list[str]) -> bool:
        return not Execution.objects.filter(pk__in=ids, status="RUNNING").exists()

    rows = []
    try:
        for fork in (False, True):
            for count in (1, 2):
                redis_server.client().flushall()
                extra = ["--fork"] if fork else []
                pool = [
                    Worker(dict(os.environ), f"bench-{'fork' if fork else 'inproc'}-{count}-{i}", extra)
                    for i in range(count)
                ]
                time.sleep(1.5)
                started = time.perf_counter()
                ids = [str(start_execution(workflows.three_steps, {}).pk) for _ in range(args.executions)]
                wait_until(lambda ids=ids: all_done(ids), 600, interval=0.05, message="throughput run")
                throughput = args.executions / (time.perf_counter() - started)
                failed = Execution.objects.filter(pk__in=ids).exclude(status="SUCCEEDED").count()
                assert not failed, f"{failed} executions did not succeed"

                waiting = [str(start_execution(workflows.approval, {}).pk) for _ in range(args.samples)]
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

                timers = [str(start_execution(workflows.timer, {"seconds": 2}).pk) for _ in range(args.samples)]
                wait_until(lambda timers=timers: all_done(timers), 120, message="timers")
                lateness = []
                for execution_id in timers:
                    before = json.loads(Operation.objects.get(execution_id=execution_id, name="before").result)
                    after = json.loads(Operation.objects.get(execution_id=execution_id, name="after").result)
                    lateness.append(after - before - 2)
                for worker in pool:
                    worker.stop()
                rows.append(
                    {
                        "worker": "forking" if fork else "in-process",
                        "workers": count,
                        "exec_per_s": throughput,
                        "cb_p50_ms": percentile(latencies, 50) * 1000,
                        "cb_p95_ms": percentile(latencies, 95) * 1000,
                        "timer_p50_ms": percentile(lateness, 50) * 1000,
                        "timer_p95_ms": percentile(lateness, 95) * 1000,
                    }
                )
    finally:
        redis_server.stop()

    print(f"SQLite (WAL), real Redis; {args.executions} executions of a 3-step workflow; {args.samples} samples\n")
    header = (
        f"{'worker':<13}{'n':>2} {'exec/s':>8} {'cb p50 ms':>10} {'cb p95 ms':>10} "
        f"{'timer p50 ms':>13} {'timer p95 ms':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['worker']:<13}{r['workers']:>2} {r['exec_per_s']:>8.1f} {r['cb_p50_ms']:>10.1f} "
            f"{r['cb_p95_ms']:>10.1f} {r['timer_p50_ms']:>13.1f} {r['timer_p95_ms']:>13.1f}"
        )
    print(
        f"\n(mean timer lateness includes RQ's 1 s scheduler poll; p50 of all rows: "
        f"{statistics.median(r['timer_p50_ms'] for r in rows):.0f} ms)"
    )


if __name__ == "__main__":
    main()
