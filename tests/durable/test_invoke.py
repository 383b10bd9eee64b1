"""context.invoke: a registered durable function runs as a child execution of the caller."""

import json

import pytest

from durable import DurableContext, InvokeConfig, durable_execution
from durable import client as durable_client
from durable.config import Duration
from durable.exceptions import InvokeError
from durable.models import Execution, ExecutionStatus, HistoryEvent, Operation
from durable.runtime import run_invocation
from durable.serdes import JsonSerDes, PassThroughSerDes
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

CHILD_RUNS: list[dict] = []


@durable_execution(name="tests.invoke.child")
def child(event: dict, context: DurableContext) -> dict:
    CHILD_RUNS.append(event)
    context.wait(Duration(5), name="child wait")
    if event.get("fail"):
        context.step(lambda _: int("x"), name="parse", config=None)
    return {"doubled": event["n"] * 2}


@durable_execution(name="tests.invoke.failing_child")
def failing_child(event: dict, context: DurableContext) -> None:
    raise PermissionError("not allowed")


@durable_execution(name="tests.invoke.waits_for_callback")
def callback_child(event: dict, context: DurableContext) -> str:
    return context.wait_for_callback(lambda callback_id, _: None, name="approval")


@durable_execution(name="tests.invoke.parent")
def parent(event: dict, context: DurableContext) -> dict:
    try:
        result = context.invoke(event["function"], event.get("payload", {"n": 21}), name="call")
    except InvokeError as exc:
        return {"error": type(exc).__name__, "error_type": exc.error_type, "message": str(exc)}
    after = context.step(lambda _: "after", name="after")
    return {"result": result, "after": after}


def start(runner: DurableTestRunner, function: str, **payload) -> str:
    return runner.run_async(json.dumps({"function": function, **payload}))


def test_invoke_starts_a_linked_child_suspends_and_returns_its_result():
    CHILD_RUNS.clear()
    with DurableTestRunner(parent) as runner:
        execution_id = start(runner, "tests.invoke.child")
        assert runner.step_once(execution_id)
        # The parent is suspended on the invoke; the child exists, linked both ways, and is due.
        op = Operation.objects.get(execution_id=execution_id, name="call")
        assert (op.type, op.sub_type, op.status) == ("CHAINED_INVOKE", "ChainedInvoke", "STARTED")
        kid = Execution.objects.get(parent_execution_id=execution_id)
        assert kid.parent_operation_id == op.operation_id
        assert op.child_execution_id == kid.pk
        assert kid.function_name == "tests.invoke.child"
        assert json.loads(kid.input) == {"n": 21}
        result = runner.wait_for_result(execution_id)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == {"result": {"doubled": 42}, "after": "after"}
    kid.refresh_from_db()
    assert kid.status == ExecutionStatus.SUCCEEDED
    assert CHILD_RUNS == [{"n": 21}, {"n": 21}]  # the child ran twice: before and after its wait
    events = list(
        HistoryEvent.objects.filter(execution_id=execution_id, name="call")
        .order_by("id")
        .values_list("event_type", "details")
    )
    assert [e for e, _ in events] == ["ChainedInvokeStarted", "ChainedInvokeSucceeded"]
    assert events[0][1]["FunctionName"] == "tests.invoke.child"
    assert events[0][1]["DurableExecutionArn"] == str(kid.pk)
    history = durable_client.get_history(execution_id)["Events"]
    succeeded = next(e for e in history if e["EventType"] == "ChainedInvokeSucceeded")
    assert json.loads(succeeded["ChainedInvokeSucceededDetails"]["Result"]["Payload"]) == {"doubled": 42}


def test_a_replay_does_not_start_the_child_twice():
    CHILD_RUNS.clear()
    with DurableTestRunner(parent) as runner:
        execution_id = start(runner, "tests.invoke.child")
        assert runner.step_once(execution_id)
        # Wake the parent again before its child ends: it replays the invoke and suspends again.
        Execution.objects.filter(pk=execution_id).update(wake_at=runner.clock.current)
        run_invocation(execution_id)
        run_invocation(execution_id)
        assert Execution.objects.filter(parent_execution_id=execution_id).count() == 1
        result = runner.wait_for_result(execution_id)
    assert json.loads(result.result)["result"] == {"doubled": 42}
    assert Execution.objects.filter(parent_execution_id=execution_id).count() == 1
    assert HistoryEvent.objects.filter(execution_id=execution_id, event_type="ChainedInvokeStarted").count() == 1


def test_a_failing_child_raises_invoke_error_with_its_error():
    with DurableTestRunner(parent) as runner:
        result = runner.run(json.dumps({"function": "tests.invoke.failing_child"}))
    assert json.loads(result.result) == {
        "error": "InvokeError",
        "error_type": "PermissionError",
        "message": "not allowed",
    }
    op = result.get_operation_by_name("call")
    assert (op.status, op.error["ErrorType"]) == ("FAILED", "PermissionError")


def test_a_stopped_child_raises_invoke_error_and_wakes_the_parent():
    with DurableTestRunner(parent) as runner:
        execution_id = start(runner, "tests.invoke.waits_for_callback")
        assert runner.step_once(execution_id)  # parent suspended, child waiting for its callback
        kid = Execution.objects.get(parent_execution_id=execution_id)
        durable_client.stop_execution(kid.pk, error={"ErrorType": "Cancelled", "ErrorMessage": "no longer needed"})
        # The child's stop completed the parent's invoke and made the parent due.
        parent_row = Execution.objects.get(pk=execution_id)
        assert parent_row.wake_at <= runner.clock.current
        result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == {
        "error": "InvokeError",
        "error_type": "Cancelled",
        "message": "no longer needed",
    }
    assert result.get_operation_by_name("call").status == "STOPPED"
    assert HistoryEvent.objects.filter(execution_id=execution_id, event_type="ChainedInvokeStopped").count() == 1


def test_stopping_the_parent_stops_its_children_and_theirs():
    @durable_execution(name="tests.invoke.grandparent")
    def grandparent(event: dict, context: DurableContext) -> None:
        context.invoke("tests.invoke.parent", {"function": "tests.invoke.waits_for_callback"}, name="middle")

    with DurableTestRunner(grandparent) as runner:
        execution_id = runner.run_async()
        assert runner.step_once(execution_id)
        middle = Execution.objects.get(parent_execution_id=execution_id)
        leaf = Execution.objects.get(parent_execution_id=middle.pk)
        assert leaf.status == ExecutionStatus.RUNNING
        durable_client.stop_execution(execution_id)
    statuses = dict(Execution.objects.filter(pk__in=[execution_id, middle.pk, leaf.pk]).values_list("pk", "status"))
    assert set(statuses.values()) == {ExecutionStatus.STOPPED}
    # The stopped children's ends did not reopen anything of their stopped parents.
    assert Operation.objects.get(execution_id=execution_id, name="middle").status == "STARTED"


def test_a_child_past_its_timeout_fails_the_invoke_with_the_official_timeout_error():
    @durable_execution(name="tests.invoke.impatient")
    def impatient(event: dict, context: DurableContext) -> dict:
        try:
            context.invoke(
                "tests.invoke.waits_for_callback", {}, name="call", config=InvokeConfig(timeout=Duration(30))
            )
        except InvokeError as exc:
            return {"error_type": exc.error_type, "message": str(exc)}
        return {}

    with DurableTestRunner(impatient) as runner:
        execution_id = runner.run_async()
        assert runner.step_once(execution_id)
        kid = Execution.objects.get(parent_execution_id=execution_id)
        assert kid.timeout_seconds == 30
        runner.clock.advance_to(kid.timeout_at)
        Execution.objects.filter(pk=kid.pk).update(wake_at=kid.timeout_at)
        result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == {
        "error_type": "ChainedInvoke.Timeout",
        "message": "CHAINED_INVOKE timed out after 30 seconds.",
    }
    assert result.get_operation_by_name("call").status == "TIMED_OUT"


def test_the_sweep_times_out_a_child_and_wakes_its_parent():
    from durable.sweep import sweep

    @durable_execution(name="tests.invoke.swept")
    def swept(event: dict, context: DurableContext) -> str:
        try:
            context.invoke("tests.invoke.waits_for_callback", {}, name="call", config=InvokeConfig(timeout=Duration(5)))
        except InvokeError as exc:
            return exc.error_type or ""
        return ""

    with DurableTestRunner(swept) as runner:
        execution_id = runner.run_async()
        assert runner.step_once(execution_id)
        kid = Execution.objects.get(parent_execution_id=execution_id)
        runner.clock.advance_to(kid.timeout_at)
        report = sweep()
        assert report.timed_out_executions == [str(kid.pk)]
        assert Execution.objects.get(pk=execution_id).wake_at == runner.clock.current
        result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == "ChainedInvoke.Timeout"


def test_an_unknown_function_fails_the_invoke_at_once():
    with DurableTestRunner(parent) as runner:
        result = runner.run(json.dumps({"function": "tests.invoke.nobody"}))
        assert runner.invocations == 1  # no suspension
    body = json.loads(result.result)
    assert (body["error"], body["error_type"]) == ("InvokeError", "ResourceNotFoundException")
    assert body["message"].startswith("Function not found: tests.invoke.nobody")
    assert not Execution.objects.filter(parent_execution__isnull=False).exists()


def test_a_payload_that_is_not_json_fails_before_anything_is_written():
    @durable_execution(name="tests.invoke.bad_payload")
    def bad_payload(event: dict, context: DurableContext) -> None:
        context.invoke("tests.invoke.child", {"n": {1, 2}}, name="call")

    with DurableTestRunner(bad_payload) as runner:
        result = runner.run()
    assert result.status == "FAILED"
    assert result.error["ErrorType"] == "SerDesError"
    assert not Execution.objects.filter(parent_execution__isnull=False).exists()
    assert not Operation.objects.filter(execution_id=result.execution_id).exists()


def test_a_child_whose_parent_was_stopped_without_it_stops_at_its_next_invocation():
    from durable import clock, events
    from durable.store import journal_store

    with DurableTestRunner(parent) as runner:
        execution_id = start(runner, "tests.invoke.child")
        assert runner.step_once(execution_id)
        kid = Execution.objects.get(parent_execution_id=execution_id)
        # The parent's stop committed, and the process died before it reached the child.
        now = clock.now()
        assert journal_store().stop_execution(execution_id, now, None, [events.execution_stopped(None, now)])
        outcome = run_invocation(str(kid.pk))
    assert outcome.status == ExecutionStatus.STOPPED
    kid.refresh_from_db()
    assert kid.status == ExecutionStatus.STOPPED
    assert kid.error["ErrorMessage"] == "its parent execution was stopped"


@durable_execution(name="tests.invoke.loses_lease")
def loses_lease(event: dict, context: DurableContext) -> None:
    def another_worker_takes_over(step) -> None:
        # Stands for this invocation's lease lapsing and another invocation taking it.
        Execution.objects.filter(pk=context.execution_id).update(lease_token="another-invocation")

    context.step(another_worker_takes_over, name="takeover")
    context.invoke("tests.invoke.child", {"n": 1}, name="call")


def test_an_invocation_that_lost_its_lease_starts_no_child():
    with DurableTestRunner(loses_lease) as runner:
        execution_id = runner.run_async()
        outcome = run_invocation(execution_id)
    assert outcome.status is None  # unrecorded: the lease's new holder carries on
    assert not Execution.objects.filter(parent_execution_id=execution_id).exists()
    assert not Operation.objects.filter(execution_id=execution_id, name="call").exists()


@durable_execution(name="tests.invoke.raw_result")
def raw_result(event: dict, context: DurableContext) -> str:
    config = InvokeConfig(serdes_payload=JsonSerDes(), serdes_result=PassThroughSerDes())
    text = context.invoke(
        "tests.invoke.failing_child" if event.get("fail") else "tests.invoke.child", {"n": 2}, config=config
    )
    assert isinstance(text, str)  # the child's JSON text, as the result serdes gives it
    return text


def test_the_result_serdes_reads_the_childs_result():
    with DurableTestRunner(raw_result) as runner:
        result = runner.run("{}")
    assert json.loads(json.loads(result.result)) == {"doubled": 4}
