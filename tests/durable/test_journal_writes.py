"""Journal writes outside any transaction (as in a worker): one transaction per step boundary,
on PostgreSQL one round trip each, and a lost lease writes nothing at all."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from durable import DurableContext, StepContext, durable_execution, sinks
from durable import clock as engine_clock
from durable.client import send_callback_success, start_execution
from durable.config import Duration
from durable.exceptions import LeaseLostError
from durable.models import Execution, HistoryEvent, Operation
from durable.runtime import run_invocation
from durable.state import Checkpoint, HistoryRecord, OperationRecord, OperationStatus, OperationType
from durable.store import journal_store
from tests.durable.helpers import Crash, sent_statements
from tests.durable.test_runtime import many_steps, three_steps

# Not wrapped in a test transaction: the writes run as a worker's do.
pytestmark = pytest.mark.django_db(transaction=True)


def test_each_step_boundary_is_one_transaction_and_one_round_trip_on_postgresql():
    execution = start_execution(three_steps, {})
    with CaptureQueriesContext(connection) as captured:
        outcome = run_invocation(str(execution.pk))
    assert outcome.status == "SUCCEEDED"
    sqls = sent_statements(captured)
    assert sqls[0].startswith('UPDATE "DURABLE_EXECUTION"')  # the lease
    if connection.vendor == "postgresql":
        # Fence, upserts and events of each boundary in one query the server runs as one
        # transaction: the lease and three round trips in all.
        assert len(sqls) == 4, sqls
        assert all(q.startswith("WITH FENCED AS (UPDATE") and "INSERT INTO" in q for q in sqls[1:]), sqls
    else:
        assert len([q for q in sqls if q.startswith('UPDATE "DURABLE_EXECUTION"')]) == 4, sqls
    ops = Operation.objects.filter(execution_id=execution.pk).order_by("id")
    assert [(op.name, op.status, op.result) for op in ops] == [
        ("s0", "SUCCEEDED", "0"),
        ("s1", "SUCCEEDED", "1"),
        ("s2", "SUCCEEDED", "2"),
    ]
    done = Execution.objects.get(pk=execution.pk)
    assert (done.status, done.result, done.lease_token) == ("SUCCEEDED", "3", None)
    events = list(HistoryEvent.objects.filter(execution_id=execution.pk).values_list("event_type", flat=True))
    assert events[0] == "ExecutionStarted"
    assert events[-2:] == ["InvocationCompleted", "ExecutionSucceeded"]
    assert events.count("StepSucceeded") == 3


def test_with_a_receiver_the_end_and_its_event_are_one_write_and_the_delivery_one_update():
    from durable.signals import execution_status_changed

    def receiver(sender, **kwargs):
        pass

    execution_status_changed.connect(receiver)
    try:
        execution = start_execution(three_steps, {})
        with CaptureQueriesContext(connection) as captured:
            outcome = run_invocation(str(execution.pk))
            sinks.flush_marks()  # held until due (durable.sinks): as a worker does between jobs
    finally:
        execution_status_changed.disconnect(receiver)
    assert outcome.status == "SUCCEEDED"
    sqls = sent_statements(captured)
    # After the end's commit, the signal is sent and its delivery recorded: one UPDATE.
    assert sqls[-1].startswith('UPDATE "DURABLE_EVENTDELIVERY"'), sqls
    assert not any(q.startswith('UPDATE "DURABLE_EVENTDELIVERY"') for q in sqls[:-1]), sqls
    if connection.vendor == "postgresql":
        # The end's event and its delivery row are inserted in the end's one query.
        assert len(sqls) == 5, sqls
        assert sqls[-2].startswith("WITH FENCED AS (UPDATE")
        assert 'INSERT INTO "DURABLE_OUTBOXEVENT"' in sqls[-2]
        assert 'INSERT INTO "DURABLE_EVENTDELIVERY"' in sqls[-2]
    else:
        fences = [i for i, q in enumerate(sqls) if q.startswith('UPDATE "DURABLE_EXECUTION"')]
        outbox = [i for i, q in enumerate(sqls) if 'INSERT INTO "DURABLE_OUTBOXEVENT"' in q]
        assert len(outbox) == 1
        assert outbox[0] > fences[-1]  # in the end's transaction, after its fence


def record(operation_id: str, status: OperationStatus, result: str | None = None) -> OperationRecord:
    return OperationRecord(operation_id, OperationType.STEP, "Step", operation_id, status, result=result)


def test_many_checkpoints_in_one_write_keep_the_last_state_of_each_operation_and_every_event():
    execution = start_execution(many_steps, {"steps": 1})
    lease = journal_store().acquire_lease(str(execution.pk), "worker", engine_clock.now(), 60)
    journal = journal_store().leased(str(execution.pk), lease.token, engine_clock.now)
    started = record("a", OperationStatus.STARTED)
    journal.write(
        [
            Checkpoint(started, [HistoryRecord("StepStarted", started, {}, engine_clock.now())]),
            Checkpoint(
                record("a", OperationStatus.SUCCEEDED, '"one"'),
                [HistoryRecord("StepSucceeded", started, {}, engine_clock.now())],
            ),
            Checkpoint(
                record("b", OperationStatus.SUCCEEDED, "2"),
                [HistoryRecord("StepSucceeded", started, {}, engine_clock.now())],
            ),
        ]
    )
    ops = dict(Operation.objects.filter(execution_id=execution.pk).values_list("operation_id", "result"))
    assert ops == {"a": '"one"', "b": "2"}
    assert Operation.objects.get(execution_id=execution.pk, operation_id="a").status == "SUCCEEDED"
    stored = HistoryEvent.objects.filter(execution_id=execution.pk).exclude(event_type="ExecutionStarted")
    assert [e.event_type for row in stored.order_by("id") for e in row.events()] == [
        "StepStarted",
        "StepSucceeded",
        "StepSucceeded",
    ]
    # a's start and end in one row (its start's time held in started_at), b's end in another.
    assert [(e.event_type, e.started_at is None) for e in stored.order_by("id")] == [
        ("StepSucceeded", False),
        ("StepSucceeded", True),
    ]


def test_a_lost_lease_writes_nothing_and_ends_nothing():
    execution = start_execution(many_steps, {"steps": 1})
    now = engine_clock.now()
    stale = journal_store().acquire_lease(str(execution.pk), "worker-a", now, 60)
    fresh = journal_store().acquire_lease(str(execution.pk), "worker-b", now + timedelta(seconds=61), 60)
    before = HistoryEvent.objects.filter(execution_id=execution.pk).count()
    late = record("late", OperationStatus.SUCCEEDED, "1")
    with pytest.raises(LeaseLostError):
        journal_store().leased(str(execution.pk), stale.token, engine_clock.now).write(
            [Checkpoint(late, [HistoryRecord("StepSucceeded", late, {}, engine_clock.now())])]
        )
    with pytest.raises(LeaseLostError):
        journal_store().leased(str(execution.pk), stale.token, engine_clock.now).finish(
            [Checkpoint(late, [])],
            [HistoryRecord("ExecutionSucceeded", None, {}, engine_clock.now())],
            status="SUCCEEDED",
            result="1",
        )
    assert not Operation.objects.filter(execution_id=execution.pk).exists()
    assert HistoryEvent.objects.filter(execution_id=execution.pk).count() == before
    kept = Execution.objects.get(pk=execution.pk)
    assert (kept.status, kept.lease_token, kept.result) == ("RUNNING", fresh.token, None)
    # The connection is usable after the rolled-back query.
    journal_store().leased(str(execution.pk), fresh.token, engine_clock.now).write([Checkpoint(late, [])])
    assert Operation.objects.filter(execution_id=execution.pk).count() == 1


# What the step after a resumed wait or callback found of it on disk, run by run.
SEEN: list[str] = []


def _after(operation_name: str, crashes: int) -> Callable[[StepContext], int]:
    def after(_: StepContext) -> int:
        SEEN.append(Operation.objects.filter(name=operation_name).values_list("status", flat=True).get())
        if len(SEEN) <= crashes:
            raise Crash  # the worker dies inside the step, its side effects done
        return len(SEEN)

    return after


@durable_execution(name="tests.journal_writes.wait_then_steps")
def wait_then_steps(event: dict, context: DurableContext) -> str:
    context.step(lambda _: 1, name="before")
    context.wait(Duration(5), name="pause")
    context.step(_after("pause", event.get("crashes", 0)), name="after")
    return context.step(lambda _: "last", name="last")


@durable_execution(name="tests.journal_writes.callback_then_steps")
def callback_then_steps(event: dict, context: DurableContext) -> str:
    answer = context.wait_for_callback(lambda callback_id, _: None, name="approval")
    context.step(_after("approval", 0), name="after")
    return context.step(lambda _: f"{answer} last", name="last")


def _writes(captured: CaptureQueriesContext) -> int:
    """The fenced write transactions among the statements (the lease's UPDATE is not one)."""
    sqls = sent_statements(captured)
    assert sqls[0].startswith('UPDATE "DURABLE_EXECUTION"'), sqls  # the lease
    fenced = ("WITH FENCED AS (UPDATE", 'UPDATE "DURABLE_EXECUTION" SET "UPDATED_AT"')
    return sum(q.startswith(fenced) for q in sqls[1:])


def _due_now(execution_id: str) -> None:
    past = engine_clock.now() - timedelta(seconds=1)
    Operation.objects.filter(execution_id=execution_id, name="pause").update(wait_until=past)


def test_a_resumed_waits_end_rides_with_the_next_write_instead_of_one_of_its_own():
    SEEN.clear()
    execution = start_execution(wait_then_steps, {})
    assert run_invocation(str(execution.pk)).status == "RUNNING"  # suspended in the wait
    _due_now(str(execution.pk))
    with CaptureQueriesContext(connection) as captured:
        outcome = run_invocation(str(execution.pk))
    assert outcome.status == "SUCCEEDED"
    # The wait's end went with "after"'s success (written before "last" runs), then the end:
    # two writes, where the wait's end had one of its own before "after" ran.
    assert _writes(captured) == 2
    assert SEEN == ["STARTED"]  # "after" ran before the wait's end was on disk
    pause = Operation.objects.get(execution_id=execution.pk, name="pause")
    assert pause.status == "SUCCEEDED"
    assert pause.ended_at is not None
    events = list(
        HistoryEvent.objects.filter(execution_id=execution.pk).order_by("id").values_list("event_type", "name")
    )
    assert events.index(("WaitSucceeded", "pause")) < events.index(("StepSucceeded", "after"))


def test_a_worker_dying_in_the_step_after_a_resumed_wait_leaves_the_wait_to_end_again_once():
    SEEN.clear()
    execution = start_execution(wait_then_steps, {"crashes": 1})
    execution_id = str(execution.pk)
    assert run_invocation(execution_id).status == "RUNNING"
    _due_now(execution_id)
    with pytest.raises(Crash):
        run_invocation(execution_id)
    # Nothing of the wait's end reached the disk: the journal says what it said before.
    assert Operation.objects.get(execution_id=execution_id, name="pause").status == "STARTED"
    token = Execution.objects.get(pk=execution_id).lease_token
    assert journal_store().expire_lease(execution_id, token, engine_clock.now())
    assert run_invocation(execution_id).status == "SUCCEEDED"
    assert SEEN == ["STARTED", "STARTED"]
    done = Execution.objects.get(pk=execution_id)
    assert (done.status, done.result) == ("SUCCEEDED", '"last"')
    events = list(HistoryEvent.objects.filter(execution_id=execution_id).values_list("event_type", flat=True))
    assert events.count("WaitSucceeded") == 1
    ops = dict(Operation.objects.filter(execution_id=execution_id).values_list("name", "status"))
    assert ops == {"before": "SUCCEEDED", "pause": "SUCCEEDED", "after": "SUCCEEDED", "last": "SUCCEEDED"}


def test_a_resumed_wait_for_callback_ends_with_the_next_write_instead_of_one_of_its_own():
    SEEN.clear()
    execution = start_execution(callback_then_steps, {})
    assert run_invocation(str(execution.pk)).status == "RUNNING"
    callback_id = Operation.objects.get(execution_id=execution.pk, type="CALLBACK").callback_id
    send_callback_success(callback_id, "yes")
    with CaptureQueriesContext(connection) as captured:
        outcome = run_invocation(str(execution.pk))
    assert outcome.status == "SUCCEEDED"
    assert _writes(captured) == 2
    assert SEEN == ["STARTED"]
    done = Execution.objects.get(pk=execution.pk)
    assert done.result == '"yes last"'
    assert Operation.objects.get(execution_id=execution.pk, name="approval").status == "SUCCEEDED"
