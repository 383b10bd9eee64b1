"""Hazards the official SDK leaves open, closed here: a handler that swallows its suspension,
operations started inside a step body, and results stored twice."""

import json
from datetime import timedelta

import pytest

from durable import DurableContext, ExecutionError, durable_execution
from durable.client import get_history
from durable.config import Duration
from durable.models import Execution, HistoryEvent, Operation
from durable.runtime import run_invocation
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

runs: list[str] = []


@pytest.fixture(autouse=True)
def _reset():
    runs.clear()


@durable_execution(name="tests.suspension.swallows")
def swallows(event: dict, context: DurableContext) -> str:
    try:
        context.wait(Duration.from_hours(1), name="an hour")
    except BaseException:
        runs.append("swallowed")
    # Carrying on as if the hour had passed: none of this may happen before it has.
    context.step(lambda _: runs.append("after the wait"), name="after")
    return "finished early"


def test_a_handler_that_swallows_its_suspension_cannot_skip_the_wait():
    with DurableTestRunner(swallows) as runner:
        execution_id = runner.run_async()
        started = runner.clock.current
        assert runner.step_once(execution_id)
        execution = Execution.objects.get(pk=execution_id)
        assert execution.status == "RUNNING"
        assert execution.wake_at == started + timedelta(hours=1)
        assert runs == ["swallowed"]
        assert not Operation.objects.filter(execution_id=execution_id, name="after").exists()
        result = runner.wait_for_result(execution_id)
    assert result.status == "SUCCEEDED"
    assert runs == ["swallowed", "after the wait"]


@durable_execution(name="tests.suspension.finally")
def step_in_finally(event: dict, context: DurableContext) -> str:
    try:
        context.wait(Duration(30), name="half a minute")
        return "waited"
    finally:
        context.step(lambda _: runs.append("cleanup"), name="cleanup")


def test_a_step_in_a_finally_after_a_wait_does_not_run_during_the_suspension():
    with DurableTestRunner(step_in_finally) as runner:
        execution_id = runner.run_async()
        assert runner.step_once(execution_id)
        assert runs == []
        result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == "waited"
    assert runs == ["cleanup"]


@durable_execution(name="tests.suspension.returns_after_swallowing")
def returns_after_swallowing(event: dict, context: DurableContext) -> str:
    try:
        context.wait(Duration(30), name="wait")
    except BaseException:
        return "returned instead of waiting"
    return "waited"


def test_a_handler_that_returns_after_swallowing_its_suspension_stays_suspended():
    with DurableTestRunner(returns_after_swallowing) as runner:
        execution_id = runner.run_async()
        assert runner.step_once(execution_id)
        assert Execution.objects.get(pk=execution_id).status == "RUNNING"
        result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == "waited"


@durable_execution(name="tests.suspension.nested")
def nested(event: dict, context: DurableContext) -> str:
    def outer(_):
        runs.append("outer")
        try:
            context.step(lambda _: runs.append("inner"), name="inner")
        except Exception as exc:
            runs.append(type(exc).__name__)
        return "outer done"

    context.step(outer, name="outer")
    return "finished"


def test_an_operation_started_inside_a_step_body_is_refused_when_it_happens():
    with DurableTestRunner(nested) as runner:
        result = runner.run()
    assert result.status == "FAILED"
    assert result.error["ErrorType"] == "NestedOperationError"
    assert "inside the body of step 'outer'" in result.error["ErrorMessage"]
    assert runs == ["outer", "NestedOperationError"]  # the inner body never ran
    assert runner.invocations == 1
    assert not Operation.objects.filter(execution_id=result.execution_id, name="inner").exists()


def test_the_nesting_error_is_an_execution_error():
    from durable.exceptions import NestedOperationError

    # Not retried as a step failure: it is a bug in the handler, not a passing fault.
    assert issubclass(NestedOperationError, ExecutionError)


@durable_execution(name="tests.suspension.results")
def results(event: dict, context: DurableContext) -> dict:
    text = context.step(lambda _: "r" * 5000, name="big")
    child = context.run_in_child_context(lambda c: c.step(lambda _: "c" * 3000, name="in child"), name="child")
    return {"n": len(text) + len(child)}


def test_a_result_is_stored_once_and_the_history_still_shows_it():
    with DurableTestRunner(results) as runner:
        result = runner.run()
    assert json.loads(result.result) == {"n": 8000}
    for event in HistoryEvent.objects.filter(execution_id=result.execution_id):
        assert "r" * 5000 not in json.dumps(event.details), event.event_type
        assert "c" * 3000 not in json.dumps(event.details), event.event_type
    history = get_history(result.execution_id)["Events"]
    succeeded = {e["Name"]: e for e in history if e["EventType"] == "StepSucceeded"}
    assert json.loads(succeeded["big"]["StepSucceededDetails"]["Result"]["Payload"]) == "r" * 5000
    assert json.loads(succeeded["in child"]["StepSucceededDetails"]["Result"]["Payload"]) == "c" * 3000
    child = next(e for e in history if e["EventType"] == "ContextSucceeded")
    assert json.loads(child["ContextSucceededDetails"]["Result"]["Payload"]) == "c" * 3000
    last = history[-1]
    assert last["EventType"] == "ExecutionSucceeded"
    assert json.loads(last["ExecutionSucceededDetails"]["Result"]["Payload"]) == {"n": 8000}


def test_run_invocation_is_not_fooled_by_a_handler_raising_after_swallowing():
    @durable_execution(name="tests.suspension.raises_after")
    def raises_after(event: dict, context: DurableContext) -> None:
        try:
            context.wait(Duration(30), name="wait")
        except BaseException:
            raise ValueError("not a real failure") from None

    with DurableTestRunner(raises_after) as runner:
        execution_id = runner.run_async()
        run_invocation(execution_id)
        assert Execution.objects.get(pk=execution_id).status == "RUNNING"
