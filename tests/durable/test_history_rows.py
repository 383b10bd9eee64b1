"""A step's (or child context's) start and end written in one commit are one history row
(`HistoryEvent.started_at`), and every reader gives back both events, as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from durable import DurableContext, RetryDecision, StepConfig, durable_execution
from durable.client import get_history
from durable.config import Duration, StepSemantics
from durable.dashboard import step_latency
from durable.models import Execution, HistoryEvent, Operation
from durable.state import HistoryRecord, OperationRecord, OperationStatus, OperationType
from durable.store import sql
from durable.testing import DurableTestRunner
from durable.timeline import build_timeline

pytestmark = pytest.mark.django_db(transaction=True)


def run(handler):
    with DurableTestRunner(handler) as runner:
        return runner.run(input="{}")


def stored(execution_id):
    return list(HistoryEvent.objects.filter(execution_id=execution_id).order_by("id"))


def kinds(execution_id):
    return [e["EventType"] for e in get_history(execution_id)["Events"]]


@durable_execution
def three_steps(event, context: DurableContext):
    return sum(context.step(lambda _, i=i: i, name=f"s{i}") for i in range(3))


def test_a_step_is_one_row_and_reads_back_as_its_start_and_its_end():
    done = run(three_steps)
    assert done.status == "SUCCEEDED"
    steps = [row for row in stored(done.execution_id) if row.operation_id]
    assert [(row.event_type, row.name) for row in steps] == [("StepSucceeded", f"s{i}") for i in range(3)]
    assert all(row.started_at is not None and row.started_at <= row.timestamp for row in steps)
    events = get_history(done.execution_id)["Events"]
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        *["StepStarted", "StepSucceeded"] * 3,
        "InvocationCompleted",
        "ExecutionSucceeded",
    ]
    assert [e["EventId"] for e in events] == list(range(1, len(events) + 1))
    for row in steps:
        start, end = [e for e in events if e.get("Name") == row.name]
        op = Operation.objects.get(execution_id=done.execution_id, name=row.name)
        assert (start["EventTimestamp"], start["StepStartedDetails"]) == (row.started_at, {})
        assert start["EventTimestamp"] == op.started_at
        assert (start["Id"], start["SubType"]) == (end["Id"], end["SubType"]) == (op.operation_id, "Step")
        assert end["StepSucceededDetails"]["Result"]["Payload"] == op.result


def _fails_twice(attempts: list[int]):
    def body(_):
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError(f"attempt {len(attempts)}")
        return "third time"

    return body


def test_each_attempt_of_a_retried_step_is_kept():
    attempts: list[int] = []

    @durable_execution
    def handler(event, context: DurableContext):
        retry = StepConfig(retry_strategy=lambda error, n: RetryDecision.retry(Duration(2)))
        return context.step(_fails_twice(attempts), name="flaky", config=retry)

    done = run(handler)
    assert (done.status, len(attempts)) == ("SUCCEEDED", 3)
    events = [e for e in get_history(done.execution_id)["Events"] if e.get("Name") == "flaky"]
    assert [e["EventType"] for e in events] == ["StepStarted", "StepFailed"] * 2 + ["StepStarted", "StepSucceeded"]
    assert [e["StepFailedDetails"]["RetryDetails"]["CurrentAttempt"] for e in events[1:4:2]] == [1, 2]
    rows = [row for row in stored(done.execution_id) if row.name == "flaky"]
    assert [(row.event_type, row.started_at is not None) for row in rows] == [
        ("StepFailed", True),
        ("StepFailed", True),
        ("StepSucceeded", True),
    ]
    # The admin's timeline splits the bar into the attempts the rows hold.
    timeline = build_timeline(Execution.objects.get(pk=done.execution_id))
    (bar,) = [b for b in timeline.bars if b.operation.name == "flaky"]
    assert [s.kind for s in bar.segments if s.kind in ("failed", "run")] == ["failed", "failed", "run"]


def test_a_start_made_durable_before_its_body_keeps_its_own_row():
    @durable_execution
    def handler(event, context: DurableContext):
        once = StepConfig(step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY)
        return context.step(lambda _: "ran", name="once", config=once)

    done = run(handler)
    rows = [row for row in stored(done.execution_id) if row.name == "once"]
    assert [(row.event_type, row.started_at) for row in rows] == [("StepStarted", None), ("StepSucceeded", None)]
    assert [k for k in kinds(done.execution_id) if k.startswith("Step")] == ["StepStarted", "StepSucceeded"]


def test_a_child_context_around_steps_keeps_its_start_and_end_apart():
    @durable_execution
    def handler(event, context: DurableContext):
        return context.run_in_child_context(lambda child: child.step(lambda _: 1, name="inner"), name="child")

    done = run(handler)
    rows = [(row.event_type, row.name, row.started_at is not None) for row in stored(done.execution_id)]
    assert ("ContextStarted", "child", False) in rows
    assert ("StepSucceeded", "inner", True) in rows
    assert ("ContextSucceeded", "child", False) in rows
    assert [k for k in kinds(done.execution_id) if k.startswith(("Step", "Context"))] == [
        "ContextStarted",
        "StepStarted",
        "StepSucceeded",
        "ContextSucceeded",
    ]


def _record(operation_id: str) -> OperationRecord:
    return OperationRecord(
        operation_id=operation_id, parent_id=None, type=OperationType.STEP, sub_type="Step", name=operation_id,
        status=OperationStatus.SUCCEEDED,
    )  # fmt: skip


def test_only_a_bare_start_just_before_its_own_end_is_held():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    a, b = _record("a"), _record("b")
    events = [
        HistoryRecord("StepStarted", a, {}, at),
        HistoryRecord("StepStarted", b, {}, at + timedelta(seconds=1)),  # a's end is not next
        HistoryRecord("StepSucceeded", b, {}, at + timedelta(seconds=2)),
        HistoryRecord("StepSucceeded", a, {}, at + timedelta(seconds=3)),
        HistoryRecord("StepStarted", a, {"Odd": 1}, at + timedelta(seconds=4)),  # details of its own
        HistoryRecord("StepFailed", a, {}, at + timedelta(seconds=5)),
        HistoryRecord("WaitStarted", a, {}, at + timedelta(seconds=6)),  # not a start the table holds
        HistoryRecord("WaitSucceeded", a, {}, at + timedelta(seconds=7)),
    ]
    rows = sql.event_rows("pk", events)
    assert [(row[1], row[4], row[8] is not None) for row in rows] == [
        ("StepStarted", "a", False),
        ("StepSucceeded", "b", True),
        ("StepSucceeded", "a", False),
        ("StepStarted", "a", False),
        ("StepFailed", "a", False),
        ("WaitStarted", "a", False),
        ("WaitSucceeded", "a", False),
    ]


def test_rows_of_one_event_each_read_back_as_before():
    """Histories written before migration 0016 (a row per event) are read as they were."""
    done = run(three_steps)
    execution = Execution.objects.get(pk=done.execution_id)
    before = get_history(done.execution_id)["Events"]
    for row in stored(done.execution_id):
        if row.started_at is not None:
            HistoryEvent.objects.create(
                execution=execution, event_type="StepStarted", operation_id=row.operation_id, name=row.name,
                sub_type=row.sub_type, timestamp=row.started_at, details={},
            )  # fmt: skip
            HistoryEvent.objects.create(
                execution=execution, event_type=row.event_type, operation_id=row.operation_id, name=row.name,
                sub_type=row.sub_type, timestamp=row.timestamp, details=row.details,
            )  # fmt: skip
        else:
            HistoryEvent.objects.create(
                execution=execution, event_type=row.event_type, operation_id=row.operation_id, name=row.name,
                sub_type=row.sub_type, timestamp=row.timestamp, details=row.details,
            )  # fmt: skip
        row.delete()
    assert not HistoryEvent.objects.filter(execution=execution, started_at__isnull=False).exists()
    assert get_history(done.execution_id)["Events"] == before


def test_the_step_latency_chart_reads_attempts_from_either_kind_of_row():
    done = run(three_steps)
    execution = Execution.objects.get(pk=done.execution_id)
    HistoryEvent.objects.filter(execution=execution).delete()
    now = datetime.now(UTC).replace(minute=30)
    since = now - timedelta(hours=1)
    common = {"execution": execution, "sub_type": "Step", "details": {}}
    two_seconds = now - timedelta(seconds=2)
    HistoryEvent.objects.bulk_create(
        [
            # One row: 2 s.
            HistoryEvent(**common, event_type="StepSucceeded", operation_id="a", timestamp=now, started_at=two_seconds),
            # Two rows: 4 s.
            HistoryEvent(**common, event_type="StepStarted", operation_id="b", timestamp=now - timedelta(seconds=4)),
            HistoryEvent(**common, event_type="StepFailed", operation_id="b", timestamp=now),
        ]
    )
    (latency,), sampled = step_latency(since, "hour")
    assert (latency.count, latency.p50, latency.p95, sampled) == (2, 2.0, 4.0, False)


def test_a_start_time_on_an_end_that_holds_no_start_is_ignored():
    """Only the engine writes `started_at`, on the ends in START_OF; a row edited by hand with
    it elsewhere still reads back as its one event."""
    done = run(three_steps)
    row = HistoryEvent.objects.filter(execution_id=done.execution_id, event_type="InvocationCompleted").get()
    before = get_history(done.execution_id)["Events"]
    HistoryEvent.objects.filter(pk=row.pk).update(started_at=row.timestamp)
    assert get_history(done.execution_id)["Events"] == before
    assert [e.event_type for e in HistoryEvent.objects.get(pk=row.pk).events()] == ["InvocationCompleted"]


def test_the_purge_counts_events_not_rows():
    """A row that holds a step's start and end is two of the purge's "history events", in a dry
    run and in a real one, so its figures match the history a reader was shown."""
    from durable import retention

    done = run(three_steps)
    events = len(get_history(done.execution_id)["Events"])
    rows = len(stored(done.execution_id))
    assert (events, rows) == (9, 6)  # three steps' starts held in their ends' rows
    now = datetime.now(UTC)
    Execution.objects.filter(pk=done.execution_id).update(ended_at=now - timedelta(days=400))
    dry = retention.purge(function_name=three_steps.name, dry_run=True, now=now)
    assert (dry.executions, dry.events) == (1, events)
    report = retention.purge(function_name=three_steps.name, now=now)
    assert (report.executions, report.events) == (1, events)
    assert not HistoryEvent.objects.filter(execution_id=done.execution_id).exists()
