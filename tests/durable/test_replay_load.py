"""The replay's load path: one query whatever the journal's length, rows read as the ORM reads
them, and the same clear errors when a stored result cannot be decoded or the code no longer
matches the journal. Runs on SQLite, and on PostgreSQL under scripts/with-postgres."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from durable import DurableContext, durable_execution
from durable.exceptions import NonDeterministicExecutionError, SerDesError
from durable.models import Execution, Operation
from durable.runtime import run_invocation
from durable.serdes import deserialize
from durable.state import ExecutionState, Journal, OperationRecord, OperationStatus, OperationType, waking_records
from durable.store import journal_store, sql
from durable.testing import DurableTestRunner
from tests.durable.helpers import set_every_column, statements

pytestmark = pytest.mark.django_db


@durable_execution(name="tests.replay_load.chain")
def chain(event: dict, context: DurableContext) -> int:
    total = 0
    for i in range(event["steps"]):
        total += context.step(lambda _, i=i: {"i": i}, name=f"s{i}")["i"]
    context.wait_for_callback(lambda callback_id, _: None, name="hold")
    return total


def _replay_queries(steps: int) -> list[str]:
    """The statements of the invocation that replays a `steps`-step journal to its end."""
    with DurableTestRunner(chain) as runner:
        execution_id = runner.run_async(json.dumps({"steps": steps}))
        assert runner.step_once(execution_id)
        assert Operation.objects.filter(execution_id=execution_id, name__startswith="s").count() == steps
        runner.send_callback_success(runner.wait_for_callback(execution_id, name="hold"), "null")
        with CaptureQueriesContext(connection) as replay:
            assert run_invocation(execution_id).status == "SUCCEEDED"
    assert Execution.objects.get(pk=execution_id).result == str(sum(range(steps)))
    return statements(replay)


def test_replaying_10_or_1000_steps_takes_the_same_queries_and_one_reads_the_journal():
    short, long = _replay_queries(10), _replay_queries(1000)
    assert len(short) == len(long), (short, long)
    op_table = Operation._meta.db_table
    # One statement reads the journal: its own SELECT, or (PostgreSQL) the lease's query.
    reads = [q for q in long if "SELECT" in q.upper() and op_table in q and "ON CONFLICT" not in q.upper()]
    assert len(reads) == 1, reads


def _row_values(record: OperationRecord) -> dict:
    return {name: getattr(record, name) for name in sql.RECORD_FIELDS}


def test_the_raw_load_reads_every_column_as_the_orm_does():
    """Every column set (datetimes, a JSON error, numbers, a callback id): the load's records
    equal those built from the ORM's values, on this database's driver."""
    with DurableTestRunner(chain) as runner:
        execution_id = runner.run_async(json.dumps({"steps": 2}))
        assert runner.step_once(execution_id)
    at = set_every_column(execution_id, "s1")
    loaded = journal_store().load_journal(execution_id)
    assert isinstance(loaded, Journal)
    orm = [
        sql.record(row)
        for row in Operation.objects.filter(execution_id=execution_id).order_by("id").values_list(*sql.OPERATION_FIELDS)
    ]
    assert list(loaded) == [r.operation_id for r in orm]
    assert [_row_values(r) for r in loaded.values()] == [_row_values(r) for r in orm]
    for record in loaded.values():
        assert type(record.type) is OperationType
        assert type(record.status) is OperationStatus
        for name in ("next_attempt_at", "started_at", "ended_at"):
            value = getattr(record, name)
            assert value is None or value.utcoffset() == timedelta(0)
    pending = next(r for r in loaded.values() if r.name == "s1")
    assert pending.error == {"ErrorType": "ValueError", "ErrorMessage": "nope \u00e9", "StackTrace": ["a", "b"]}
    assert pending.started_at == at - timedelta(days=400)
    # What the load noted on its way: the ended operations, and those that may have woken it
    # (not ended, or a callback): the pending step and the waiting callback's context/callback.
    assert loaded.ended == {r.operation_id for r in orm if r.status == "SUCCEEDED"}
    assert {r.operation_id for r in waking_records(loaded)} == {
        r.operation_id for r in orm if r.status not in ("SUCCEEDED",) or r.type == "CALLBACK"
    }
    assert pending in waking_records(loaded)


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ('{"i": ', "Expecting value: line 1 column 7 (char 6)"),
        ('{"i":0}x', "Extra data: line 1 column 8 (char 7)"),
        ("", "Expecting value: line 1 column 1 (char 0)"),
    ],
)
def test_a_result_that_no_longer_decodes_fails_the_replay_naming_why(stored, reason):
    with DurableTestRunner(chain) as runner:
        execution_id = runner.run_async(json.dumps({"steps": 3}))
        assert runner.step_once(execution_id)
        Operation.objects.filter(execution_id=execution_id, name="s1").update(result=stored)
        runner.send_callback_success(runner.wait_for_callback(execution_id, name="hold"), "null")
        assert run_invocation(execution_id).status == "FAILED"
    error = Execution.objects.get(pk=execution_id).error
    assert error["ErrorType"] == "SerDesError"
    assert error["ErrorMessage"] == f"ExtendedTypeSerDes could not deserialize a journal value: {reason}"
    # The same words json.loads itself gives.
    with pytest.raises(json.JSONDecodeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        json.loads(stored)


def test_a_result_with_whitespace_around_it_still_decodes():
    """Results another writer stored with spaces (or a serdes's own layout) decode as json.loads does."""
    for stored in (' {"i": 1} ', "\n[1, 2]\n", "  7", '"x"  '):
        assert deserialize(None, stored, "op", "ex") == json.loads(stored)
    with pytest.raises(SerDesError, match="could not deserialize a journal value: Expecting value"):
        deserialize(None, "   ", "op", "ex")


def _state(record: OperationRecord) -> ExecutionState:
    journal = Journal()
    journal.add(record)
    return ExecutionState("ex", journal, writer=None, clock=lambda: datetime.now(UTC))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("asked", "difference"),
    [
        ((OperationType.WAIT, "Step", "charge", "p1"), "type: journal has 'STEP', code asks for 'WAIT'"),
        ((OperationType.STEP, "Wait", "charge", "p1"), "sub type: journal has 'Step', code asks for 'Wait'"),
        ((OperationType.STEP, "Step", "refund", "p1"), "name: journal has 'charge', code asks for 'refund'"),
        ((OperationType.STEP, "Step", "charge", "p2"), "parent: journal has 'p1', code asks for 'p2'"),
    ],
)
def test_a_journal_that_no_longer_matches_the_code_names_the_one_difference(asked, difference):
    held = OperationRecord("op1", OperationType.STEP, "Step", "charge", OperationStatus.SUCCEEDED, parent_id="p1")
    state = _state(held)
    type_, sub_type, name, parent = asked
    with pytest.raises(NonDeterministicExecutionError) as raised:
        state.visit("op1", type_, sub_type, name, parent)
    message = str(raised.value)
    assert f"Differences: {difference}." in message, message
    assert message.count("journal has") == 1, message
    # Names and parents compare with None and "" as the same (as before).
    same = OperationRecord("op2", OperationType.STEP, "Step", None, OperationStatus.SUCCEEDED, parent_id="")
    assert _state(same).visit("op2", OperationType.STEP, "Step", "", None) is same


@durable_execution(name="tests.replay_load.renamed")
def renamed(event: dict, context: DurableContext) -> int:
    for i in range(3):
        context.step(lambda _, i=i: i, name=f"{event['prefix']}{i}")
    context.wait_for_callback(lambda callback_id, _: None, name="hold")
    return 0


def test_code_changed_under_a_journal_fails_the_replay_as_non_deterministic():
    with DurableTestRunner(renamed) as runner:
        execution_id = runner.run_async(json.dumps({"prefix": "s"}))
        assert runner.step_once(execution_id)
        Execution.objects.filter(pk=execution_id).update(input=json.dumps({"prefix": "t"}))
        runner.send_callback_success(runner.wait_for_callback(execution_id, name="hold"), "null")
        assert run_invocation(execution_id).status == "FAILED"
    error = Execution.objects.get(pk=execution_id).error
    assert error["ErrorType"] == "NonDeterministicExecutionError"
    assert "name: journal has 's0', code asks for 't0'" in error["ErrorMessage"]
