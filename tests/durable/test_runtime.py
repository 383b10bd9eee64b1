import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from durable import DurableContext, durable_execution
from durable import clock as engine_clock
from durable.client import start_execution
from durable.config import Duration
from durable.exceptions import LeaseLostError
from durable.execution import register
from durable.models import Execution, Operation
from durable.runtime import run_invocation
from durable.state import Checkpoint, OperationRecord, OperationStatus, OperationType
from durable.store import journal_store
from durable.testing import DurableTestRunner
from tests.durable.helpers import Crash, crash_then_expire_lease, statements

pytestmark = pytest.mark.django_db


@durable_execution(name="tests.runtime.many_steps")
def many_steps(event: dict, context: DurableContext) -> int:
    total = 0
    for i in range(event["steps"]):
        total += context.step(lambda _, i=i: i, name=f"s{i}")
    context.wait(Duration(5), name="pause")
    return total + context.step(lambda _: 1, name="last")


@pytest.mark.parametrize("steps", [5, 300])
def test_replay_loads_the_journal_in_a_constant_number_of_queries(steps):
    with DurableTestRunner(many_steps) as runner:
        execution_id = runner.run_async(json.dumps({"steps": steps}))
        assert runner.step_once(execution_id)
        assert Operation.objects.filter(execution_id=execution_id).count() == steps + 1
        runner.clock.advance_to(runner.clock.current + timedelta(seconds=5))
        with CaptureQueriesContext(connection) as replay:
            run_invocation(execution_id)
    assert Execution.objects.get(pk=execution_id).result == str(sum(range(steps)) + 1)
    # lease UPDATE (reading the execution back), journal SELECT (on PostgreSQL in the lease's
    # own query); the last step's SUCCEEDED rides with the finishing transaction.
    sent = statements(replay)
    selects = [q for q in sent if q.lstrip().upper().startswith("SELECT")]
    assert len(selects) == (0 if connection.vendor == "postgresql" else 1), [q[:80] for q in selects]
    reads = [q for q in sent if "SELECT" in q.upper() and "ON CONFLICT" not in q]
    assert len(reads) == 1, [q[:80] for q in reads]
    # (SQLite: the lease's UPDATE runs in an IMMEDIATE transaction, here a savepoint.)
    assert len(sent) <= 16, [q[:60] for q in sent]
    replay_queries[steps] = len(replay.captured_queries)
    if len(replay_queries) == 2:
        assert replay_queries[5] == replay_queries[300]


replay_queries: dict[int, int] = {}


@durable_execution(name="tests.runtime.three_steps")
def three_steps(event: dict, context: DurableContext) -> int:
    return sum(context.step(lambda _, i=i: i, name=f"s{i}") for i in range(3))


def test_a_first_invocation_reads_no_journal_and_writes_a_transaction_per_step_boundary():
    execution = start_execution(three_steps, {})
    with CaptureQueriesContext(connection) as first:
        outcome = run_invocation(str(execution.pk))
    assert outcome.status == "SUCCEEDED"
    sqls = [q.lstrip().upper() for q in statements(first)]
    assert not [q for q in sqls if q.startswith("SELECT")], sqls
    # Step 1's SUCCEEDED is written before step 2's body runs, step 2's before step 3's, and
    # step 3's with the invocation's end: three fenced transactions (a fence UPDATE and one
    # upsert each), after the lease's UPDATE.
    assert len([q for q in sqls if 'INSERT INTO "DURABLE_OPERATION"' in q]) == 3, sqls
    assert len([q for q in sqls if q.startswith('UPDATE "DURABLE_EXECUTION"')]) == 4, sqls
    assert (
        list(Operation.objects.filter(execution_id=execution.pk).values_list("status", flat=True)) == ["SUCCEEDED"] * 3
    )


def test_a_held_lease_keeps_a_second_delivery_out():
    execution = start_execution(many_steps, {"steps": 1})
    now = engine_clock.now()
    held = journal_store().acquire_lease(str(execution.pk), "worker-a", now, 60)
    assert held is not None
    assert journal_store().acquire_lease(str(execution.pk), "worker-b", now, 60) is None
    assert not run_invocation(str(execution.pk)).ran
    # Once the lease expires, another worker may take it.
    later = now + timedelta(seconds=61)
    assert journal_store().acquire_lease(str(execution.pk), "worker-b", later, 60) is not None


def test_a_worker_that_lost_its_lease_writes_nothing():
    execution = start_execution(many_steps, {"steps": 1})
    now = engine_clock.now()
    stale = journal_store().acquire_lease(str(execution.pk), "worker-a", now, 60)
    fresh = journal_store().acquire_lease(str(execution.pk), "worker-b", now + timedelta(seconds=61), 60)
    assert stale.token != fresh.token
    assert fresh.took_over  # the stale holder never released: it counts as dead
    record = OperationRecord("op-1", OperationType.STEP, "Step", "late", OperationStatus.SUCCEEDED, result="1")
    with pytest.raises(LeaseLostError):
        journal_store().leased(str(execution.pk), stale.token, engine_clock.now).write([Checkpoint(record, [])])
    assert not Operation.objects.filter(execution=execution).exists()
    journal_store().leased(str(execution.pk), fresh.token, engine_clock.now).write([Checkpoint(record, [])])
    assert Operation.objects.filter(execution=execution).count() == 1
    # Nor can it end the execution: the fence fails and the whole last transaction rolls back.
    other = OperationRecord("op-2", OperationType.STEP, "Step", "later", OperationStatus.SUCCEEDED, result="2")
    with pytest.raises(LeaseLostError):
        journal_store().leased(str(execution.pk), stale.token, engine_clock.now).finish(
            [Checkpoint(other, [])], [], status="SUCCEEDED", result="2"
        )
    assert Operation.objects.filter(execution=execution).count() == 1
    assert Execution.objects.get(pk=execution.pk).status == "RUNNING"


@durable_execution(name="tests.runtime.not_json")
def not_json(event: dict, context: DurableContext) -> object:
    return {1, 2}


def test_a_handler_result_that_is_not_json_fails_clearly():
    with DurableTestRunner(not_json) as runner:
        result = runner.run()
    assert result.status == "FAILED"
    assert "type set" in result.error["ErrorMessage"]


def test_an_execution_of_an_unregistered_function_fails_with_a_clear_error():
    execution = start_execution(many_steps, {"steps": 1})
    Execution.objects.filter(pk=execution.pk).update(function_name="gone.function")
    run_invocation(str(execution.pk))
    execution.refresh_from_db()
    assert execution.status == "FAILED"
    assert execution.error["ErrorType"] == "UnknownFunctionError"
    assert "gone.function" in execution.error["ErrorMessage"]


def test_code_that_no_longer_matches_its_journal_fails_with_a_diff():
    @durable_execution(name="tests.runtime.changing")
    def before(event: dict, context: DurableContext) -> None:
        context.step(lambda _: 1, name="reserve")
        context.wait(Duration(60), name="hold")

    @durable_execution(name="tests.runtime.changing")
    def after(event: dict, context: DurableContext) -> None:
        context.wait(Duration(60), name="hold")

    with DurableTestRunner(before) as runner:
        execution_id = runner.run_async()
        assert runner.step_once(execution_id)
        register(after)
        result = runner.wait_for_result(execution_id)
    assert result.status == "FAILED"
    assert result.error["ErrorType"] == "NonDeterministicExecutionError"
    message = result.error["ErrorMessage"]
    assert "journal has 'STEP', code asks for 'WAIT'" in message
    assert "journal has 'reserve', code asks for 'hold'" in message


@durable_execution(name="tests.runtime.always_dies")
def always_dies(event: dict, context: DurableContext) -> str:
    from durable import StepConfig
    from durable.config import JitterStrategy
    from durable.retries import RetryStrategyConfig, create_retry_strategy

    context.step(lambda _: "fine", name="before")

    def doomed(_):
        raise Crash  # the process dies here every time

    strategy = create_retry_strategy(RetryStrategyConfig(max_attempts=2, jitter_strategy=JitterStrategy.NONE))
    context.step(doomed, name="doomed", config=StepConfig(retry_strategy=strategy))
    return "unreachable"


def test_invocations_dying_at_the_same_step_count_against_its_retries_then_fail(settings):
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "INVOCATION_DEATHS_LIMIT": 3}
    with DurableTestRunner(always_dies) as runner:
        execution_id = runner.run_async()
        deaths = 0
        while runner.clock is not None:
            try:
                if not runner.step_once(execution_id):
                    break
            except Crash:
                deaths += 1
                runner.clock.advance_to(runner.clock.current + timedelta(seconds=61))
                continue
            runner.clock.advance_to(Execution.objects.get(pk=execution_id).wake_at)
        result = runner.wait_for_result(execution_id)
    # Each attempt: 3 invocations die in it, the next one counts that as a failed attempt.
    assert deaths == 6
    assert result.status == "FAILED"
    assert "died 3 times in a row while running step 'doomed'" in result.error["ErrorMessage"]
    step = result.get_step("doomed")
    assert (step.status, step.attempt) == ("FAILED", 2)
    assert step.error["ErrorType"] == "InvocationDiedError"
    assert result.get_step("before").status == "SUCCEEDED"


@durable_execution(name="tests.runtime.dies_outside_steps")
def dies_outside_steps(event: dict, context: DurableContext) -> None:
    raise Crash


def test_invocations_dying_outside_any_step_cannot_loop_forever(settings):
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "INVOCATION_DEATHS_LIMIT": 2}
    with DurableTestRunner(dies_outside_steps) as runner:
        execution_id = runner.run_async()
        for _ in range(5):
            crash_then_expire_lease(runner, execution_id)
        result = runner.wait_for_result(execution_id)
    assert result.status == "FAILED"
    assert result.error["ErrorType"] == "InvocationDiedError"
    assert "5 invocations in a row died" in result.error["ErrorMessage"]


@durable_execution(name="tests.runtime.db_outage")
def db_outage(event: dict, context: DurableContext) -> int:
    return context.step(lambda step: step.attempt, name="work")


@pytest.mark.django_db(transaction=True)
def test_a_database_outage_during_a_checkpoint_is_not_a_step_failure(monkeypatch):
    from django.db import OperationalError

    from durable.store import sql as journal_sql

    real = journal_sql.checkpoint_rows  # what every journal write builds its statements from
    outage = {"on": True}

    def flaky_rows(execution_id, checkpoints):
        if outage["on"]:
            raise OperationalError("server closed the connection unexpectedly")
        return real(execution_id, checkpoints)

    monkeypatch.setattr(journal_sql, "checkpoint_rows", flaky_rows)
    with DurableTestRunner(db_outage) as runner:
        execution_id = runner.run_async()
        outcome = run_invocation(execution_id)
        assert (outcome.ran, outcome.status) == (True, None)  # stopped, nothing recorded
        assert not Operation.objects.filter(execution_id=execution_id).exists()
        assert Execution.objects.get(pk=execution_id).status == "RUNNING"
        outage["on"] = False
        runner.clock.advance_to(runner.clock.current + timedelta(seconds=61))  # the lease lapses
        result = runner.wait_for_result(execution_id)
    assert result.status == "SUCCEEDED"
    step = result.get_step("work")
    assert (step.status, step.attempt) == ("SUCCEEDED", 1)  # the outage cost no attempt


def test_the_default_dispatcher_is_rq_and_the_test_runner_needs_none(settings, caplog):
    # A project that adds `durable` gets working workers by default, and its tests of handlers
    # need no Redis: the test runner dispatches nothing while it drives invocations itself.
    from durable import conf

    assert conf.SETTINGS.declared["DISPATCHER"].default == "durable.rq.dispatch"
    settings.DURABLE = {"DISPATCHER": "durable.rq.dispatch"}
    settings.RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:1/0"}}  # nothing listens there
    with DurableTestRunner(many_steps) as runner:  # it waits: its invocation asks for a wake-up
        result = runner.run(json.dumps({"steps": 2}))
    assert result.status == "SUCCEEDED"
    assert not [r for r in caplog.records if "dispatch" in r.getMessage()]  # nothing tried Redis


def test_settings_are_declared_once_and_read_from_the_environment(settings, monkeypatch):
    # A setting's value: the project's dict, else its DURABLE_* variable, else the default; a bad
    # variable or an unknown key fails at start-up (check), naming it.
    from django.core.exceptions import ImproperlyConfigured

    from durable import conf

    settings.DURABLE = {}
    monkeypatch.delenv("DURABLE_LEASE_SECONDS", raising=False)
    assert conf.get("LEASE_SECONDS") == 60.0
    monkeypatch.setenv("DURABLE_LEASE_SECONDS", "7.5")
    assert conf.get("LEASE_SECONDS") == 7.5
    settings.DURABLE = {"LEASE_SECONDS": 3}
    assert conf.get("LEASE_SECONDS") == 3
    # The project's dict is remembered between changes of settings, and looked up again after each.
    with override_settings(DURABLE={"LEASE_SECONDS": 9}):
        assert conf.get("LEASE_SECONDS") == 9
    assert conf.get("LEASE_SECONDS") == 3
    settings.DURABLE["LEASE_SECONDS"] = 4  # the same dict, changed in place
    assert conf.get("LEASE_SECONDS") == 4
    del settings.DURABLE
    assert conf.get("LEASE_SECONDS") == 7.5
    monkeypatch.setenv("DURABLE_EVENT_SOURCE", "caf\u00e9.r\u00e9sum\u00e9")  # decoded as os.environ decodes it
    assert conf.get("EVENT_SOURCE") == "caf\u00e9.r\u00e9sum\u00e9"
    monkeypatch.delenv("DURABLE_EVENT_SOURCE")
    assert conf.get("EVENT_SOURCE") == conf.SETTINGS.declared["EVENT_SOURCE"].default
    monkeypatch.setenv("DURABLE_DISPATCHER", "")
    settings.DURABLE = {}
    assert conf.get("DISPATCHER") is None  # empty: nobody dispatches
    monkeypatch.setenv("DURABLE_LEASE_SECONDS", "soon")
    with pytest.raises(ImproperlyConfigured, match="DURABLE_LEASE_SECONDS='soon'"):
        conf.SETTINGS.check()
    monkeypatch.setenv("DURABLE_LEASE_SECONDS", "7.5")
    settings.DURABLE = {"LEASE_SECOND": 3}
    with pytest.raises(ImproperlyConfigured, match="unknown keys: LEASE_SECOND"):
        conf.SETTINGS.check()
    with pytest.raises(KeyError):
        conf.get("NO_SUCH_SETTING")
