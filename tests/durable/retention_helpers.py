"""Journal rows for the retention tests and the purge benchmark, and a hold hook for worker tests."""

import os
import time
import uuid
from datetime import datetime, timedelta

from durable.models import Execution, ExecutionStatus, HistoryEvent, Operation

ENDED = [ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.STOPPED]


def seed(
    function_name: str,
    ended_days_ago: float | None,
    *,
    count: int = 1,
    operations: int = 3,
    events: int = 2,
    now: datetime,
    status: str | None = None,
) -> list[str]:
    """Executions ended `ended_days_ago` (None: RUNNING), each with operations and history rows."""
    rows = []
    for i in range(count):
        ended = None if ended_days_ago is None else now - timedelta(days=ended_days_ago, seconds=i)
        rows.append(
            Execution(
                function_name=function_name,
                execution_name=uuid.uuid4().hex,
                input="{}",
                input_hash="0" * 64,
                status=status or (ENDED[i % 4] if ended else ExecutionStatus.RUNNING),
                created_at=now - timedelta(days=100),
                updated_at=ended or now,
                ended_at=ended,
                timeout_seconds=86400 * 366,
                timeout_at=now + timedelta(days=300),
                wake_at=None if ended else now + timedelta(days=1),
            )
        )
    Execution.objects.bulk_create(rows)
    Operation.objects.bulk_create(
        Operation(execution=row, operation_id=f"{j:064x}", type="STEP", sub_type="Step", status="SUCCEEDED")
        for row in rows
        for j in range(operations)
    )
    HistoryEvent.objects.bulk_create(
        HistoryEvent(execution=row, event_type="StepSucceeded", timestamp=now) for row in rows for _ in range(events)
    )
    return [str(row.pk) for row in rows]


def journal_rows(ids: list[str]) -> tuple[int, int, int]:
    return (
        Execution.objects.filter(pk__in=ids).count(),
        Operation.objects.filter(execution_id__in=ids).count(),
        HistoryEvent.objects.filter(execution_id__in=ids).count(),
    )


def slow_hold(execution_ids: list[str]) -> set[str]:
    """A hold hook for worker processes: holds nothing, takes a while, and appends
    "pid start end" to the file RETENTION_HOOK_LOG names, so a test can see whether two purges
    ever ran at once."""
    start = time.time()
    time.sleep(0.2)
    with open(os.environ["RETENTION_HOOK_LOG"], "a") as log:
        log.write(f"{os.getpid()} {start} {time.time()}\n")
    return set()
