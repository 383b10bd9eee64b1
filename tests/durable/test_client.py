import json
from datetime import timedelta

import pytest

from durable import DurableContext, durable_execution
from durable.client import get_execution, get_history, start_execution, stop_execution
from durable.config import Duration
from durable.exceptions import (
    ExecutionAlreadyExistsError,
    ExecutionNotFoundError,
    ExecutionNotRunningError,
    UnknownFunctionError,
    ValidationError,
)
from durable.models import Execution, HistoryEvent
from durable.runtime import run_invocation
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db


@durable_execution(name="tests.client.sleepy")
def sleepy(event: dict, context: DurableContext) -> dict:
    context.step(lambda _: event["n"] * 2, name="double")
    context.wait(Duration.from_hours(2), name="nap")
    return {"done": event["n"]}


def test_start_is_idempotent_by_name_and_conflicts_on_other_input():
    first = start_execution(sleepy, {"n": 1}, execution_name="order-1")
    again = start_execution("tests.client.sleepy", {"n": 1}, execution_name="order-1")
    assert again.pk == first.pk
    assert Execution.objects.count() == 1
    with pytest.raises(ExecutionAlreadyExistsError, match="order-1"):
        start_execution(sleepy, {"n": 2}, execution_name="order-1")
    assert Execution.objects.count() == 1
    assert HistoryEvent.objects.filter(event_type="ExecutionStarted").count() == 1


def test_start_validates_its_arguments():
    with pytest.raises(ValidationError, match="JSON"):
        start_execution(sleepy, {"n": object()})
    with pytest.raises(ValidationError, match="between 1 second and 366 days"):
        start_execution(sleepy, {"n": 1}, execution_timeout=0.5)
    with pytest.raises(ValidationError, match="between 1 second and 366 days"):
        start_execution(sleepy, {"n": 1}, execution_timeout=Duration.from_days(400))
    with pytest.raises(UnknownFunctionError, match=r"no\.such\.function"):
        start_execution("no.such.function", {})
    assert not Execution.objects.exists()


def test_oversized_input_is_refused(settings):
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "MAX_INPUT_BYTES": 100}
    with pytest.raises(ValidationError, match="limit is 100"):
        start_execution(sleepy, {"n": "x" * 200})
    assert not Execution.objects.exists()


def test_execution_past_its_timeout_ends_timed_out():
    with DurableTestRunner(sleepy) as runner:
        result = runner.run(json.dumps({"n": 3}), execution_timeout=3600)
    assert result.status == "TIMED_OUT"
    assert "timeout of 3600 seconds" in result.error["ErrorMessage"]
    execution = get_execution(result.execution_id)
    assert execution.ended_at - execution.created_at == timedelta(seconds=3600)
    # The wait never completed: the execution timed out first.
    assert result.get_wait("nap").status == "STARTED"
    events = [e["EventType"] for e in get_history(result.execution_id)["Events"]]
    assert events[-1] == "ExecutionTimedOut"


def test_stop_ends_a_running_execution_and_refuses_its_next_invocation():
    with DurableTestRunner(sleepy) as runner:
        execution_id = runner.run_async(json.dumps({"n": 4}))
        assert runner.step_once(execution_id)
        stopped = stop_execution(execution_id)
        assert stopped.status == "STOPPED"
        runner.clock.advance_to(runner.clock.current + timedelta(hours=3))
        outcome = run_invocation(execution_id)
        assert not outcome.ran
        with pytest.raises(ExecutionNotRunningError):
            stop_execution(execution_id)
    events = [e["EventType"] for e in get_history(execution_id)["Events"]]
    assert events[-1] == "ExecutionStopped"
    assert get_execution(execution_id).result is None


def test_unknown_execution_id():
    with pytest.raises(ExecutionNotFoundError):
        get_execution("00000000-0000-0000-0000-000000000000")
    with pytest.raises(ExecutionNotFoundError):
        get_execution("not-a-uuid")


def test_history_has_the_official_shape():
    with DurableTestRunner(sleepy) as runner:
        result = runner.run(json.dumps({"n": 5}))
    events = get_history(result.execution_id)["Events"]
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "StepStarted",
        "StepSucceeded",
        "WaitStarted",
        "InvocationCompleted",
        "WaitSucceeded",
        "InvocationCompleted",
        "ExecutionSucceeded",
    ]
    assert [e["EventId"] for e in events] == list(range(1, 9))
    started, step_started, step_succeeded, wait_started = events[:4]
    assert started["ExecutionStartedDetails"]["Input"]["Payload"] == json.dumps({"n": 5})
    assert started["Id"] == result.execution_id
    assert step_succeeded["Name"] == "double"
    assert step_succeeded["SubType"] == "Step"
    assert step_succeeded["Id"] == step_started["Id"]
    assert step_succeeded["StepSucceededDetails"]["Result"]["Payload"] == "10"
    assert wait_started["WaitStartedDetails"]["Duration"] == 7200
    assert events[-1]["ExecutionSucceededDetails"]["Result"]["Payload"] == json.dumps({"done": 5})
    hidden = get_history(result.execution_id, include_execution_data=False)["Events"]
    assert hidden[0]["ExecutionStartedDetails"]["Input"] == {"Truncated": True}


def test_durable_execution_registers_under_module_qualname_or_name():
    from durable.execution import get_function

    def handler(event: dict, context: DurableContext) -> None:
        return None

    default = durable_execution(handler)
    assert default.name == f"{__name__}.test_durable_execution_registers_under_module_qualname_or_name.<locals>.handler"
    assert get_function(default.name) is default
    named = durable_execution(name="tests.client.named")(handler)
    assert get_function("tests.client.named") is named
    # A function named module.qualname is found by importing its module.
    demo = "durable.management.commands.durable_demo.demo"
    assert get_function(demo).name == demo


@pytest.mark.django_db(transaction=True)
def test_the_demo_command_runs_the_demo_to_success_in_process():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("durable_demo", "--in-process", "--wait-seconds", "1", stdout=out)
    text = out.getvalue()
    assert "invocation 2: execution is SUCCEEDED" in text
    assert "Demo execution SUCCEEDED" in text
    assert Execution.objects.get(function_name="durable.management.commands.durable_demo.demo").status == "SUCCEEDED"


def test_list_operations_puts_children_under_their_context_with_depth():
    from durable import DurableContext, durable_execution
    from durable.client import list_operations
    from durable.testing import DurableTestRunner

    @durable_execution(name="tests.client.nested_listing")
    def nested(event, context: DurableContext) -> int:
        context.step(lambda _: 1, name="first")
        context.run_in_child_context(lambda child: child.step(lambda _: 2, name="inner"), name="child")
        return context.step(lambda _: 3, name="last")

    with DurableTestRunner(nested) as runner:
        result = runner.run()
    rows = [(op.name, op.type, op.depth, op.status) for op in list_operations(result.execution_id)]
    assert rows == [
        ("first", "STEP", 0, "SUCCEEDED"),
        ("child", "CONTEXT", 0, "SUCCEEDED"),
        ("inner", "STEP", 1, "SUCCEEDED"),
        ("last", "STEP", 0, "SUCCEEDED"),
    ]
    assert list_operations(result.execution_id)[0].result == "1"
