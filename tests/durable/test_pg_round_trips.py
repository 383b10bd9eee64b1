"""Round trips per invocation: on PostgreSQL the lease and the journal's load are one query
(durable/store/postgresql.py), and no invocation's count grows with its journal's length.

Each `execute` is one round trip on PostgreSQL (a multi-statement query is one), so the
statements Django's cursor runs are counted, and pinned. SQLite keeps the lease, then the load
(no network: a statement costs no round trip there); there the count must only not grow.
(These settings send no outbox events: a worker's delivery mark, batched, is not counted.)"""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from durable import DurableContext, durable_execution
from durable.client import send_callback_success, start_execution
from durable.clock import FakeClock, use_clock
from durable.config import Duration
from durable.exceptions import LeaseLostError
from durable.models import Execution, Operation
from durable.runtime import run_invocation
from durable.state import Checkpoint, OperationRecord, OperationStatus, OperationType
from durable.store import journal_store, sql
from durable.store.base import SqlJournalStore
from durable.store.postgresql import readable
from durable.testing import DurableTestRunner
from tests.durable.helpers import set_every_column

pytestmark = pytest.mark.django_db

POSTGRES = connection.vendor == "postgresql"


@durable_execution(name="tests.round_trips.steps")
def steps(event: dict, context: DurableContext) -> int:
    for i in range(event["steps"]):
        context.step(lambda _, i=i: i, name=f"s{i}")
    if event.get("wait"):
        context.wait(Duration(1), name="pause")
        context.step(lambda _: -1, name="after")
    return int(event["steps"])


def _statements(execution_id: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        run_invocation(execution_id)
    return [readable(q["sql"]) for q in captured.captured_queries]


def _resume_statements(clock: FakeClock, steps_before: int) -> list[str]:
    """The invocation that resumes after a timer, `steps_before` steps in its journal."""
    execution_id = str(start_execution(steps, {"steps": steps_before, "wait": True}).pk)
    run_invocation(execution_id)
    assert Execution.objects.get(pk=execution_id).wake_at is not None
    clock.advance_to(clock.current + timedelta(seconds=2))
    statements = _statements(execution_id)
    assert Execution.objects.get(pk=execution_id).status == "SUCCEEDED"
    return statements


@pytest.mark.django_db(transaction=True)  # as in a worker: no test transaction around it
def test_an_invocation_takes_a_fixed_number_of_round_trips_whatever_its_journal_length():
    clock = FakeClock()
    with use_clock(clock):
        run_invocation(str(start_execution(steps, {"steps": 1}).pk))  # statements built, connection warm
        # A first invocation of 3 steps: the lease (no journal to read: it is the first), a write
        # before each next operation, the last write with the ending.
        first = _statements(str(start_execution(steps, {"steps": 3}).pk))
        # A timer's resume: the lease and the journal (one round trip on PostgreSQL), then the
        # last step with the wait's completion (which a replay re-derives) and the ending.
        short, long = _resume_statements(clock, 2), _resume_statements(clock, 200)
    assert len(short) == len(long), (short, long)
    if POSTGRES:
        # Pinned: the lease; the second step's write (the first's checkpoint), the third's, the
        # last with the ending. Before the lease read the journal, a resume took 4; before the
        # wait's completion rode with the next write, 3.
        assert len(first) == 4, first
        assert len(long) == 2, long
    lease = next(q for q in long if "lease_owner" in q)
    assert lease.lstrip().upper().startswith("UPDATE")
    op_table = Operation._meta.db_table
    reads = [q for q in long if op_table in q and "SELECT" in q.upper() and "ON CONFLICT" not in q.upper()]
    assert len(reads) == 1, reads
    # On PostgreSQL the journal is read by the lease's own query; elsewhere by the next one.
    assert (reads[0] == lease) is POSTGRES


@durable_execution(name="tests.round_trips.held")
def held(event: dict, context: DurableContext) -> int:
    for i in range(event["steps"]):
        context.step(lambda _, i=i: {"i": i}, name=f"s{i}")
    context.wait_for_callback(lambda callback_id, _: None, name="hold")
    return 0


def _varied_journal() -> str:
    """An execution suspended on a callback, one of its steps with every column set."""
    with DurableTestRunner(held) as runner:
        execution_id = runner.run_async(json.dumps({"steps": 3}))
        assert runner.step_once(execution_id)
    set_every_column(execution_id, "s1")
    return execution_id


def _columns(journal: dict[str, OperationRecord]) -> list[tuple]:
    return [tuple((name, getattr(r, name)) for name in sql.RECORD_FIELDS) for r in journal.values()]


def test_the_lease_returns_exactly_the_journal_the_load_reads_and_the_execution_the_orm_reads():
    execution_id = _varied_journal()
    old = journal_store().load_journal(execution_id)  # the two-step path's load
    now = datetime.now(UTC)
    lease = journal_store().acquire_lease(execution_id, "worker-a", now, 60)
    assert lease is not None
    assert (lease.journal is not None) is POSTGRES
    journal = lease.journal if lease.journal is not None else journal_store().load_journal(execution_id)
    assert list(journal) == list(old)
    assert _columns(journal) == _columns(old)  # column by column, values and types
    for record in journal.values():
        for name in ("next_attempt_at", "wait_until", "callback_deadline", "started_at", "ended_at"):
            value = getattr(record, name)
            assert value is None or value.tzinfo is connection.timezone
    assert journal.ended == old.ended
    assert journal.waking == old.waking
    # The execution's row as the ORM reads it, every field, the lease's own columns included.
    orm = Execution.objects.get(pk=execution_id)
    for field in Execution._meta.concrete_fields:
        mine, theirs = getattr(lease.execution, field.attname), getattr(orm, field.attname)
        assert (mine, type(mine)) == (theirs, type(theirs)), field.name
        if isinstance(theirs, datetime):
            assert mine.tzinfo is theirs.tzinfo, field.name
    assert orm.lease_token == lease.token


def test_a_held_lease_is_refused_and_its_journal_not_read():
    execution_id = _varied_journal()
    now = datetime.now(UTC)
    held_lease = journal_store().acquire_lease(execution_id, "worker-a", now, 60)
    assert held_lease is not None
    with CaptureQueriesContext(connection) as captured:
        assert journal_store().acquire_lease(execution_id, "worker-b", now + timedelta(seconds=30), 60) is None
    # One statement (SQLite's lease transaction is a savepoint inside the test's transaction).
    assert len([q for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]) == 1
    kept = Execution.objects.get(pk=execution_id)
    assert (kept.lease_token, kept.lease_owner) == (held_lease.token, "worker-a")
    # Expired, it is taken, with the journal.
    taken = journal_store().acquire_lease(execution_id, "worker-b", now + timedelta(seconds=61), 60)
    assert taken is not None
    assert taken.took_over
    journal = taken.journal if taken.journal is not None else journal_store().load_journal(execution_id)
    assert len(journal) == Operation.objects.filter(execution_id=execution_id).count() > 0


def test_a_first_invocation_reads_no_journal_rows_even_if_some_exist():
    """The lease's query reads the journal only after a first invocation (whose is empty)."""
    execution_id = str(start_execution(steps, {"steps": 0}).pk)
    record = OperationRecord("op-x", OperationType.STEP, "Step", "x", OperationStatus.SUCCEEDED, result="1")
    Operation.objects.create(execution_id=execution_id, operation_id="op-x", type="STEP", name="x", status="SUCCEEDED")
    lease = journal_store().acquire_lease(execution_id, "worker-a", datetime.now(UTC), 60)
    assert lease is not None
    assert lease.execution.invocation_count == 1
    assert lease.journal == ({} if POSTGRES else None)
    assert record.operation_id not in (lease.journal or {})


def test_a_lease_lost_after_the_combined_read_still_refuses_every_write():
    execution_id = _varied_journal()
    now = datetime.now(UTC)
    stale = journal_store().acquire_lease(execution_id, "worker-a", now, 60)
    fresh = journal_store().acquire_lease(execution_id, "worker-b", now + timedelta(seconds=61), 60)
    assert stale is not None
    assert fresh is not None
    assert stale.token != fresh.token
    late = OperationRecord("late", OperationType.STEP, "Step", "late", OperationStatus.SUCCEEDED, result="1")
    before = Operation.objects.filter(execution_id=execution_id).count()
    with pytest.raises(LeaseLostError):
        journal_store().leased(execution_id, stale.token, lambda: now).write([Checkpoint(late, [])])
    assert Operation.objects.filter(execution_id=execution_id).count() == before
    assert Execution.objects.get(pk=execution_id).lease_token == fresh.token


@durable_execution(name="tests.round_trips.awaits")
def awaits(event: dict, context: DurableContext) -> str:
    return context.create_callback(name="decision").result()


@pytest.mark.django_db(transaction=True)  # as in a worker: the end is one query on PostgreSQL
@pytest.mark.parametrize("complete", [True, False])
def test_an_end_that_suspends_on_a_callback_completed_meanwhile_makes_the_execution_due_now(monkeypatch, complete):
    """The invocation reads its callback pending, then (`complete`) the sender commits before
    the invocation's end: the end's query makes the execution due now."""
    real = SqlJournalStore.load_operation
    sent: list[str] = []

    def read_then_send(self, execution_id, operation_id):
        found = real(self, execution_id, operation_id)
        if complete and not sent and found is not None and found.callback_id:
            send_callback_success(found.callback_id, '"yes"')
            sent.append(found.callback_id)
        return found

    clock = FakeClock()
    with use_clock(clock):
        run_invocation(str(start_execution(steps, {"steps": 1}).pk))  # statements built
        execution_id = str(start_execution(awaits, {}).pk)
        monkeypatch.setattr(SqlJournalStore, "load_operation", read_then_send)
        statements = _statements(execution_id)
        monkeypatch.undo()
        assert len(sent) == int(complete)
        execution = Execution.objects.get(pk=execution_id)
        assert (execution.status, execution.lease_token) == ("RUNNING", None)
        callback = Operation.objects.get(execution_id=execution_id, type="CALLBACK")
        assert callback.status == ("SUCCEEDED" if complete else "STARTED")
        if complete:
            assert execution.wake_at == clock.current  # due now
        else:
            assert execution.wake_at > clock.current  # its deadline, or the execution's timeout
        if POSTGRES:
            # The end is one query whose last statement is the check (before: a transaction, the
            # statements pipelined, then the check, then COMMIT).
            end = statements[-1]
            assert "lease_owner" in end
            assert Operation._meta.db_table in end.split(";")[-1]
        if not complete:
            send_callback_success(callback.callback_id, '"later"')
        assert run_invocation(execution_id).status == "SUCCEEDED"
    # The callback's payload as sent, returned by the handler.
    assert json.loads(Execution.objects.get(pk=execution_id).result) == ('"yes"' if complete else '"later"')


@pytest.mark.django_db(transaction=True)
def test_a_lost_lease_at_an_end_that_watches_callbacks_writes_nothing():
    execution_id = str(start_execution(awaits, {}).pk)
    now = datetime.now(UTC)
    stale = journal_store().acquire_lease(execution_id, "worker-a", now, 60)
    fresh = journal_store().acquire_lease(execution_id, "worker-b", now + timedelta(seconds=61), 60)
    assert stale is not None
    assert fresh is not None
    with pytest.raises(LeaseLostError):
        journal_store().leased(execution_id, stale.token, lambda: now).finish(
            [], [], watched_callbacks=["no-such-callback"], status="RUNNING", wake_at=now
        )
    kept = Execution.objects.get(pk=execution_id)
    assert (kept.lease_token, kept.status) == (fresh.token, "RUNNING")


@pytest.mark.django_db(transaction=True)  # as a web request sends it: no test transaction around it
def test_a_callback_completion_is_five_statements_the_row_held_before_the_callback_is_read():
    """A sender's transaction, pinned: the execution's row held (found through the callback),
    the callback read, its completion, the execution due, the event. Before raw SQL it was nine
    ORM queries (the callback read twice, the execution's names read for the outbox once more);
    on PostgreSQL the first two and the last three are each sent without waiting for a reply."""
    clock = FakeClock()
    with use_clock(clock):
        execution_id = str(start_execution(awaits, {}).pk)
        run_invocation(execution_id)
        callback = Operation.objects.get(execution_id=execution_id, type="CALLBACK")
        with CaptureQueriesContext(connection) as captured:
            send_callback_success(callback.callback_id, '"yes"')
    statements = [q["sql"] for q in captured.captured_queries if q["sql"] not in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT")]
    assert len(statements) == 5, statements
    hold, read, complete, wake, event = statements
    assert hold.startswith(f'UPDATE "{Execution._meta.db_table}"')
    assert "RETURNING" in hold
    assert read.startswith("SELECT")
    assert f'FROM "{Operation._meta.db_table}"' in read
    assert complete.startswith(f'UPDATE "{Operation._meta.db_table}"')
    assert "SUCCEEDED" in complete
    assert wake.startswith(f'UPDATE "{Execution._meta.db_table}"')
    assert '"wake_at"' in wake
    assert event.startswith('INSERT INTO "durable_historyevent"')
    assert "CallbackSucceeded" in event
    execution = Execution.objects.get(pk=execution_id)
    assert execution.wake_at == clock.current  # due now
    callback.refresh_from_db()
    assert (callback.status, callback.result, callback.ended_at) == ("SUCCEEDED", '"yes"', clock.current)
    assert run_invocation(execution_id).status == "SUCCEEDED"
    assert json.loads(execution.__class__.objects.get(pk=execution_id).result) == '"yes"'
