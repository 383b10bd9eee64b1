"""Tests written for the official `DurableFunctionTestRunner` pass unchanged on ours.

Each test below is source code written once against the official packages, with `{sdk}` and
`{testing}` as the import prefixes, and run twice: with the official SDK and its testing runner,
and with `durable` and `durable.testing`. Only the prefixes change. The scenarios are the ones
tests of durable functions are written for: the result and the operation tree, a callback found
by polling the history (the official runner moves the execution in the background), callbacks
completed, failed and timed out, retries, long waits skipped, a child context tested alone, the
execution timeout, and the runner's errors.
"""

import textwrap
import time
import types

import pytest

pytestmark = pytest.mark.django_db

PREFIXES = {
    "official": {"sdk": "aws_durable_execution_sdk_python", "testing": "aws_durable_execution_sdk_python_testing"},
    "ours": {"sdk": "durable", "testing": "durable.testing"},
}

PRELUDE = """
import datetime, json, time
import pytest
from {sdk}.config import CallbackConfig, Duration, JitterStrategy, StepConfig, WaitForCallbackConfig
from {sdk}.context import DurableContext, durable_step, durable_with_child_context
from {sdk}.exceptions import CallbackError, CallbackTimeoutError, StepError
from {sdk}.execution import InvocationStatus, durable_execution
from {sdk}.lambda_service import ErrorObject, OperationStatus, OperationType
from {sdk}.retries import RetryStrategyConfig, create_retry_strategy
from {sdk}.serdes import ExtendedTypeSerDes
from {sdk}.types import StepContext
from {testing}.runner import (
    CallbackOperation,
    ContextOperation,
    DurableChildContextTestRunner,
    DurableFunctionTestResult,
    DurableFunctionTestRunner,
    StepOperation,
    WaitOperation,
)
"""

SCENARIOS = {
    "result_and_operation_tree": """
@durable_step
def greet(step, first: str, last: str) -> str:
    return f"{first} {last}"

@durable_with_child_context
def pair(ctx: DurableContext, a: int, b: int) -> str:
    left = ctx.step(greet(str(a), str(b)))
    right = ctx.step(greet(str(b), str(a)))
    return f"{left}|{right}"

@durable_execution
def handler(event, context: DurableContext):
    first = context.step(greet(event["who"], "x"))
    context.wait(Duration.from_seconds(2), name="pause")
    second = context.run_in_child_context(pair(3, 4))
    return [first, second]

def test():
    with DurableFunctionTestRunner(handler=handler) as runner:
        result: DurableFunctionTestResult = runner.run(input=json.dumps({"who": "ada"}), timeout=30)
    assert result.status is InvocationStatus.SUCCEEDED
    assert result.error is None
    assert json.loads(result.result) == ["ada x", "3 4|4 3"]
    assert ExtendedTypeSerDes().deserialize(result.result) == ["ada x", "3 4|4 3"]  # as the examples read results
    step: StepOperation = result.get_step("greet")
    assert step.result == '"ada x"'
    assert step.status is OperationStatus.SUCCEEDED
    assert step.operation_type is OperationType.STEP
    assert step.attempt == 1
    wait: WaitOperation = result.get_wait("pause")
    assert wait.scheduled_end_timestamp - wait.start_timestamp >= datetime.timedelta(seconds=2)
    context: ContextOperation = result.get_context("pair")
    assert context.result == '"3 4|4 3"'
    assert [op.name for op in context.child_operations] == ["greet", "greet"]
    assert context.get_step("greet").result == '"3 4"'
    assert all(child.parent_id == context.operation_id for child in context.child_operations)
    assert [op.name for op in result.operations] == ["greet", "pause", "pair"]
    assert len(result.get_all_operations()) == 5
    return result.result
""",
    "callback_found_by_polling_the_history": """
@durable_execution
def handler(event, context: DurableContext):
    callback = context.create_callback(name="approval", config=CallbackConfig(timeout=Duration.from_minutes(5)))
    context.step(lambda _: "sent", name="notify")
    return {"decision": callback.result()}

def test():
    with DurableFunctionTestRunner(handler=handler) as runner:
        arn = runner.run_async(input="{}", execution_timeout=60)
        callback_id = None
        deadline = time.monotonic() + 20
        while callback_id is None and time.monotonic() < deadline:
            history = runner.get_execution_history(arn)
            for event in history.events:
                if event.event_type == "CallbackStarted" and event.name == "approval":
                    callback_id = event.callback_started_details.callback_id
            time.sleep(0.05)
        assert callback_id, "the execution never created its callback"
        runner.send_callback_success(callback_id, b"yes")
        result = runner.wait_for_result(arn, timeout=20)
    assert result.status is InvocationStatus.SUCCEEDED
    assert json.loads(result.result) == {"decision": "yes"}
    callback: CallbackOperation = result.get_callback("approval")
    assert callback.callback_id == callback_id
    assert callback.status is OperationStatus.SUCCEEDED
    assert callback.result == "yes"
    return result.result
""",
    "callback_failure_and_heartbeat": """
@durable_execution
def handler(event, context: DurableContext):
    try:
        context.wait_for_callback(lambda callback_id, ctx: None, name="review",
                                  config=WaitForCallbackConfig(timeout=Duration.from_minutes(5),
                                                               heartbeat_timeout=Duration.from_minutes(1)))
    except CallbackError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}

def test():
    with DurableFunctionTestRunner(handler=handler, poll_interval=0.05) as runner:
        arn = runner.run_async(input="{}", execution_timeout=60)
        callback_id = runner.wait_for_callback(arn, name="review create callback id", timeout=20)
        runner.send_callback_heartbeat(callback_id)
        rejected = ErrorObject(message="no", type="Rejected", data=None, stack_trace=None)
        runner.send_callback_failure(callback_id, rejected)
        result = runner.wait_for_result(arn, timeout=20)
        # A completed callback is still found by its name (the official runner's behaviour).
        assert runner.wait_for_callback(arn, name="review create callback id", timeout=2) == callback_id
    assert result.status is InvocationStatus.SUCCEEDED
    outcome = json.loads(result.result)
    assert outcome["error"] == "CallbackExternalError"
    callback = result.get_context("review").get_callback("review create callback id")
    assert callback.status is OperationStatus.FAILED
    assert callback.error.type == "Rejected"
    assert callback.error.message == "no"
    return result.result
""",
    "callback_times_out_in_real_time": """
@durable_execution
def handler(event, context: DurableContext):
    callback = context.create_callback(name="slow", config=CallbackConfig(timeout=Duration.from_seconds(1)))
    try:
        callback.result()
    except CallbackTimeoutError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}

def test():
    started = time.monotonic()
    with DurableFunctionTestRunner(handler=handler) as runner:
        result = runner.run(input="{}", execution_timeout=30)
    assert 0.9 <= time.monotonic() - started < 20
    assert result.status is InvocationStatus.SUCCEEDED
    callback = result.get_callback("slow")
    assert callback.status is OperationStatus.TIMED_OUT
    assert callback.error.type == "Callback.Timeout"
    assert json.loads(result.result) == {"error": "CallbackTimeoutError", "message": callback.error.message}
    return result.result
""",
    "retries_and_failure": """
attempts = []

@durable_execution
def handler(event, context: DurableContext):
    def flaky(step: StepContext):
        attempts.append(step.attempt)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "ok"
    retry = create_retry_strategy(RetryStrategyConfig(
        max_attempts=5, initial_delay=Duration.from_minutes(10), jitter_strategy=JitterStrategy.NONE))
    context.step(flaky, name="flaky", config=StepConfig(retry_strategy=retry))
    raise ValueError("the handler gives up")

def test():
    started = time.monotonic()
    with DurableFunctionTestRunner(handler=handler) as runner:
        result = runner.run(input="{}")
    assert time.monotonic() - started < 20  # two ten-minute retry delays were skipped
    assert result.status is InvocationStatus.FAILED
    assert result.result is None
    assert result.error.type.rsplit(".", 1)[-1] == "ValueError"
    assert result.error.message == "the handler gives up"
    step = result.get_step("flaky")
    assert step.attempt == 3
    assert step.status is OperationStatus.SUCCEEDED
    assert attempts == [1, 2, 3]
    return result.error.message
""",
    "a_day_long_wait_within_a_five_minute_timeout": """
@durable_execution
def handler(event, context: DurableContext):
    context.wait(Duration.from_days(1), name="tomorrow")
    return "later"

def test():
    with DurableFunctionTestRunner(handler=handler, execution_timeout=300, invocation_timeout=60) as runner:
        result = runner.run(function_name="a label, not a registered function")
    assert result.status is InvocationStatus.SUCCEEDED
    assert result.result == '"later"'
    wait = result.get_wait("tomorrow")
    assert wait.scheduled_end_timestamp - wait.start_timestamp >= datetime.timedelta(days=1)
    return result.result
""",
    "the_execution_timeout_counts_real_time": """
@durable_execution
def handler(event, context: DurableContext):
    context.wait(Duration.from_hours(1), name="hour")
    return context.step(lambda _: "an hour later", name="after")

def test():
    with DurableFunctionTestRunner(handler=handler) as runner:
        arn = runner.run_async(execution_timeout=2)
        result = runner.wait_for_result(arn, timeout=20)
    # The skipped hour does not count against the 2-second execution timeout.
    assert result.status is InvocationStatus.SUCCEEDED
    assert result.execution_status.value == "SUCCEEDED"
    assert result.result == '"an hour later"'
    return result.result
""",
    "input_forms": """
@durable_execution
def handler(event, context: DurableContext):
    return {"event": event}

def test():
    events = []
    with DurableFunctionTestRunner(handler=handler) as runner:
        for text in ('{"a": [1, 2]}', '"quoted"', "plain text", "  ", "42", None, {"as": "a dict"}):
            result = runner.run(input=text, execution_timeout=30)
            assert result.status is InvocationStatus.SUCCEEDED
            events.append(json.loads(result.result)["event"])
    assert events == [{"a": [1, 2]}, "quoted", "plain text", "  ", 42, None, {"as": "a dict"}]
    return events
""",
    "pause_and_resume": """
@durable_execution
def handler(event, context: DurableContext):
    first = context.step(lambda _: 1, name="first")
    context.wait(Duration.from_hours(1), name="hour")
    return first + context.step(lambda _: 1, name="second")

def test():
    with DurableFunctionTestRunner(handler=handler) as runner:
        arn = runner.run_async(input="{}")
        runner.pause_execution(arn, timeout=10)
        time.sleep(0.5)
        # Paused: nothing moves (read from the history; the official runner 1.4.0 never ends an
        # execution whose wait_for_result timed out while it was paused).
        events = [event.event_type for event in runner.get_execution_history(arn).events]
        assert "ExecutionSucceeded" not in events and "WaitSucceeded" not in events
        runner.resume_execution(arn)
        result = runner.wait_for_result(arn, timeout=20)
    assert result.status is InvocationStatus.SUCCEEDED
    assert result.result == "2"
    return result.result
""",
    "child_context_alone": """
@durable_with_child_context
def block(ctx: DurableContext, n: int) -> int:
    ctx.wait(Duration.from_hours(2), name="nap")
    return ctx.step(lambda _: n * 2, name="double")

def test():
    with DurableChildContextTestRunner(block, 21) as runner:
        result = runner.run(input="{}", execution_timeout=30)
    assert result.status is InvocationStatus.SUCCEEDED
    assert result.result == "42"
    assert result.get_step("double").result == "42"
    with pytest.raises(Exception, match="not found"):
        result.get_step("missing")
    return result.result
""",
}


def compile_scenario(source: str, prefix: str):
    module = types.ModuleType(f"runner_scenario_{prefix}")
    exec(textwrap.dedent(PRELUDE.format(**PREFIXES[prefix]) + source), module.__dict__)
    return module.test


@pytest.mark.parametrize("prefix", sorted(PREFIXES))
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_test_written_for_the_official_runner_passes_on_both(name, prefix):
    compile_scenario(SCENARIOS[name], prefix)()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_both_runners_give_the_test_the_same_values(name):
    returned = {prefix: compile_scenario(SCENARIOS[name], prefix)() for prefix in PREFIXES}
    assert returned["ours"] == returned["official"]


def test_the_background_thread_moves_the_execution_without_runner_calls():
    # The hang this runner fixes: nothing is called on the runner while the test waits.
    from durable import Duration, durable_execution
    from durable.testing import DurableFunctionTestRunner

    seen = []

    @durable_execution(name="test_testing_runner.moves")
    def handler(event, context):
        context.wait(Duration.from_hours(1), name="hour")
        seen.append(context.step(lambda _: "after the hour", name="after"))
        return "done"

    with DurableFunctionTestRunner(handler) as runner:
        arn = runner.run_async()
        deadline = time.monotonic() + 20
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert seen == ["after the hour"]
        assert runner.wait_for_result(arn, timeout=20).result == '"done"'


def test_bad_input_and_arguments_get_clear_errors():
    from durable import durable_execution
    from durable.exceptions import ValidationError
    from durable.models import Execution
    from durable.testing import DurableFunctionTestRunner

    @durable_execution
    def handler(event, context):
        return event

    with pytest.raises(TypeError, match="durable_execution"):
        DurableFunctionTestRunner(lambda event, context: None)
    with pytest.raises(ValueError, match="store"):
        DurableFunctionTestRunner(handler, store=object())
    with pytest.raises(ValidationError, match="between 1 second and 366 days"):
        DurableFunctionTestRunner(handler, execution_timeout=0)
    with DurableFunctionTestRunner(handler) as runner:
        with pytest.raises(ValidationError, match="between 1 second and 366 days"):
            runner.run_async(input="{}", execution_timeout=400 * 86400)
        with pytest.raises(ValidationError, match="cannot be stored"):
            runner.run_async(input='"\\u0000"', execution_name="nul\x00name")
        assert not Execution.objects.exists()


def test_an_execution_waiting_for_a_callback_times_out_after_its_timeout_in_real_time():
    # (The official runner 1.4.0 did not return from wait_for_result here: ours only.)
    from durable import durable_execution
    from durable.execution import InvocationStatus
    from durable.testing import DurableFunctionTestRunner

    @durable_execution(name="test_testing_runner.never")
    def handler(event, context):
        return context.create_callback(name="never").result()

    started = time.monotonic()
    with DurableFunctionTestRunner(handler) as runner:
        arn = runner.run_async(execution_timeout=1)
        with pytest.raises(TimeoutError):
            runner.wait_for_result(arn, timeout=0.2)
        result = runner.wait_for_result(arn, timeout=20)
    assert 0.9 <= time.monotonic() - started < 20
    assert result.status is InvocationStatus.FAILED
    assert result.execution_status.value == "TIMED_OUT"
    assert result.error.type == "ExecutionTimedOut"


# The invoke helper adds the runner's target for a non-durable function with context.invoke (the
# lead empties this at merge; asserted missing until then).
PENDING_OTHER_HELPERS = {
    ("DurableFunctionTestRunner", "register_function"),
    ("DurableChildContextTestRunner", "register_function"),
}


@pytest.mark.parametrize(
    "name",
    [
        "DurableFunctionTestRunner",
        "DurableChildContextTestRunner",
        "DurableFunctionCloudTestRunner",
        "DurableFunctionTestResult",
        "ContextOperation",
        "StepOperation",
        "CallbackOperation",
        "WaitOperation",
        "InvokeOperation",
    ],
)
def test_the_classes_offer_the_official_methods_with_the_official_parameters(name):
    import dataclasses
    import inspect

    from aws_durable_execution_sdk_python_testing import runner as theirs

    from durable.testing import runner as ours

    official, port = getattr(theirs, name), getattr(ours, name)
    for method_name, method in inspect.getmembers(official, callable):
        if method_name.startswith("_") and method_name not in ("__init__", "__enter__", "__exit__"):
            continue
        if method_name in ("from_svc_operation", "from_execution_history"):
            continue  # built from the Lambda service's models, which this engine has not
        if (name, method_name) in PENDING_OTHER_HELPERS:
            assert not hasattr(port, method_name), f"{name}.{method_name} exists: empty the pending set"
            continue
        assert hasattr(port, method_name), f"{name}.{method_name} is missing"
        if method_name == "__init__" and dataclasses.is_dataclass(official):
            continue  # compared as fields below
        expected = [(p.name, p.default) for p in inspect.signature(method).parameters.values()]
        found = [(p.name, p.default) for p in inspect.signature(getattr(port, method_name)).parameters.values()]
        assert found == expected, f"{name}.{method_name}"
    if dataclasses.is_dataclass(official):
        assert [f.name for f in dataclasses.fields(port)] == [f.name for f in dataclasses.fields(official)]


def test_two_runners_open_at_once_share_the_clock_and_both_finish():
    from durable import Duration, durable_execution
    from durable.testing import DurableFunctionTestRunner

    @durable_execution(name="test_testing_runner.sleeper")
    def sleeper(event, context):
        context.wait(Duration.from_days(event["days"]), name="sleep")
        return event["days"]

    with DurableFunctionTestRunner(sleeper) as outer, DurableFunctionTestRunner(sleeper) as inner:
        assert inner.clock is outer.clock
        first, second = outer.run_async(input='{"days": 2}'), inner.run_async(input='{"days": 3}')
        assert inner.wait_for_result(second, timeout=20).result == "3"
        assert outer.wait_for_result(first, timeout=20).result == "2"
