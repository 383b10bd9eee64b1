"""The purge of expired executions: total time, and the longest single transaction (what the
journal's other writers may wait for at most, on SQLite the writer lock).

Seeds N ended executions, 40 days old, each with K operations and E history events, beside
RUNNING executions and young ended ones the purge must keep, then runs `durable.retention.purge`
with the given batch size and prints the figures as JSON. On a fresh SQLite file in var/ (WAL,
the project's settings), or on PostgreSQL under scripts/with-postgres.

Usage: python bench/purge.py [--executions 10000] [--operations 10] [--events 12] [--batch-size 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres")


def setup_django(db_path: str) -> None:
    if not POSTGRES:
        os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DJANGO_LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_DEBUG"] = "false"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(executions: int, operations: int, events: int, kept: int) -> None:
    from durable import clock
    from durable.models import Execution, ExecutionStatus, HistoryEvent, Operation

    now = clock.now()
    ended = [ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.STOPPED]

    def execution(i: int, days: int | None) -> Execution:
        end = None if days is None else now - timedelta(days=days, seconds=i)
        return Execution(
            function_name=f"bench.purge.f{i % 4}",
            execution_name=uuid.uuid4().hex,
            input='{"document": 1}',
            input_hash="0" * 64,
            status=ended[i % 4] if end else ExecutionStatus.RUNNING,
            result='{"ok": true}' if end else None,
            created_at=now - timedelta(days=days or 1, hours=1),
            updated_at=end or now,
            ended_at=end,
            timeout_seconds=86400,
            timeout_at=now + timedelta(days=1),
        )

    chunk = 1000
    plan = [(executions, 40), (kept, 5), (kept, None)]  # expired, young, running
    for count, days in plan:
        for first in range(0, count, chunk):
            rows = [execution(i, days) for i in range(first, min(count, first + chunk))]
            Execution.objects.bulk_create(rows)
            Operation.objects.bulk_create(
                [
                    Operation(
                        execution=row,
                        operation_id=f"{j:064x}",
                        type="STEP",
                        sub_type="Step",
                        name=f"step {j}",
                        status="SUCCEEDED",
                        attempt=1,
                        result='{"value": "a step result of some length"}',
                        started_at=now,
                        ended_at=now,
                    )
                    for row in rows
                    for j in range(operations)
                ],
                batch_size=5000,
            )
            HistoryEvent.objects.bulk_create(
                [
                    HistoryEvent(
                        execution=row, event_type="StepSucceeded", name="step", timestamp=now, details={"Attempt": 1}
                    )
                    for row in rows
                    for _ in range(events)
                ],
                batch_size=5000,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--operations", type=int, default=10)
    parser.add_argument("--events", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--kept", type=int, default=1000, help="Young ended and running executions each (kept).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "var") as folder:
        setup_django(str(Path(folder) / "purge.sqlite3"))
        from django.db import connection

        from durable import retention
        from durable.models import Execution, HistoryEvent, Operation

        started = time.perf_counter()
        seed(args.executions, args.operations, args.events, args.kept)
        seeded = time.perf_counter() - started
        before = Execution.objects.count(), Operation.objects.count(), HistoryEvent.objects.count()
        report = retention.purge(batch_size=args.batch_size)
        after = Execution.objects.count(), Operation.objects.count(), HistoryEvent.objects.count()
        assert report.executions == args.executions, report
        assert after[0] == 2 * args.kept
        result: dict[str, Any] = {
            "database": connection.vendor,
            "executions_purged": report.executions,
            "operations_purged": report.operations,
            "events_purged": report.events,
            "rows_before": before,
            "rows_after": after,
            "batch_size": args.batch_size,
            "batches": report.batches,
            "purge_seconds": round(report.seconds, 3),
            "executions_per_second": round(report.executions / report.seconds),
            "longest_transaction_seconds": round(report.longest_batch_seconds, 4),
            "mean_transaction_seconds": round(report.seconds / max(1, report.batches), 4),
            "seed_seconds": round(seeded, 1),
        }
        if POSTGRES:
            Execution.objects.all().delete()
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
