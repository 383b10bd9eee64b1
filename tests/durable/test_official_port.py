"""Differential tests: the official SDK and its testing runner as an oracle.

Each handler's source is written once with `{sdk}` as the import prefix, then compiled twice:
against `aws_durable_execution_sdk_python` (run on the official testing runner) and against
`durable` (run on ours, `durable.testing.DurableFunctionTestRunner`, driven by the very same
calls). The results, the errors' types and texts, the sequences of operations (type, sub type,
name, status, attempt, and the ids themselves), the operations' errors and the history's events
(type, operation, sub type, parent, recorded error) must be the same. Handlers that wait for a
callback are driven the same way on both runners: find the callback, complete it. Callback
deadlines pass in real time on both runners, so those use 1-2 second timeouts.
"""

import json
import re
import textwrap
import time
import types

import pytest
from aws_durable_execution_sdk_python.lambda_service import ErrorObject
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

from durable.client import stop_execution
from durable.testing import DurableFunctionTestRunner as OurRunner
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

PRELUDE = """
from {sdk}.config import Duration, JitterStrategy, StepConfig, StepSemantics
from {sdk}.context import DurableContext, durable_step
from {sdk}.execution import durable_execution
from {sdk}.retries import RetryPresets, RetryStrategyConfig, create_retry_strategy
from {sdk}.types import StepContext
from {sdk}.exceptions import StepError, CallbackError, ChildContextError
from {sdk}.config import CallbackConfig, WaitForCallbackConfig, ChildConfig
from {sdk}.context import durable_with_child_context
from {sdk}.serdes import JsonSerDes
from {sdk}.waits import WaitForConditionConfig, WaitStrategyConfig, create_wait_strategy
from {sdk}.exceptions import WaitForConditionError, InvokeError
from {sdk}.retries import WithRetryConfig, with_retry
from {sdk}.context import durable_wait_for_callback
import logging
COUNTS = {{}}
def bump(key):
    COUNTS[key] = COUNTS.get(key, 0) + 1
    return COUNTS[key]
"""

HANDLERS = {
    "steps_and_wait": """
@durable_step
def add(step: StepContext, a: int, b: int) -> int:
    return a + b

@durable_execution
def handler(event, context: DurableContext):
    total = context.step(add(event["a"], event["b"]))
    context.wait(Duration.from_seconds(3), name="pause")
    doubled = context.step(lambda _: total * 2, name="double")
    return {"total": total, "doubled": doubled}
""",
    "retry_then_succeed": """
@durable_execution
def handler(event, context: DurableContext):
    def flaky(step: StepContext):
        if bump("flaky") < 3:
            raise ConnectionError("try again")
        return {"attempt": step.attempt}
    cfg = StepConfig(retry_strategy=create_retry_strategy(
        RetryStrategyConfig(max_attempts=4, initial_delay=Duration(1), jitter_strategy=JitterStrategy.NONE)))
    return context.step(flaky, name="flaky", config=cfg)
""",
    "retries_exhausted_and_caught": """
@durable_execution
def handler(event, context: DurableContext):
    def bad(step: StepContext):
        raise ValueError("always")
    cfg = StepConfig(retry_strategy=create_retry_strategy(
        RetryStrategyConfig(max_attempts=2, initial_delay=Duration(1), jitter_strategy=JitterStrategy.NONE)))
    try:
        context.step(bad, name="bad", config=cfg)
    except StepError as exc:
        return {"caught": type(exc).__name__}
    return {"caught": None}
""",
    "unhandled_failure": """
@durable_execution
def handler(event, context: DurableContext):
    context.step(lambda _: 1, name="ok")
    context.step(lambda _: 1 / 0, name="divide", config=StepConfig(retry_strategy=RetryPresets.none()))
""",
    "at_most_once": """
@durable_execution
def handler(event, context: DurableContext):
    cfg = StepConfig(step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY, retry_strategy=RetryPresets.none())
    first = context.step(lambda _: "charged", name="charge", config=cfg)
    context.wait(Duration(2), name="settle")
    return first
""",
    "many_waits": """
@durable_execution
def handler(event, context: DurableContext):
    for i in range(3):
        context.wait(Duration.from_minutes(i + 1), name=f"w{i}")
    return "done"
""",
    "linear_preset_retries": """
@durable_execution
def handler(event, context: DurableContext):
    def twice_broken(step: StepContext):
        if bump("linear") <= 2:
            raise TimeoutError("slow")
        return step.attempt
    return context.step(twice_broken, name="linear", config=StepConfig(retry_strategy=RetryPresets.linear()))
""",
    "retryable_error_types": """
@durable_execution
def handler(event, context: DurableContext):
    def wrong(step: StepContext):
        raise KeyError("not retryable")
    cfg = StepConfig(retry_strategy=create_retry_strategy(RetryStrategyConfig(
        max_attempts=5, initial_delay=Duration(1), retryable_error_types=[TimeoutError])))
    try:
        context.step(wrong, name="wrong", config=cfg)
    except StepError:
        return "gave up at once"
""",
    "child_context": """
def inside(child: DurableContext):
    a = child.step(lambda _: 20, name="inner a")
    child.wait(Duration(2), name="inner wait")
    return a + child.step(lambda _: 1, name="inner b")

@durable_execution
def handler(event, context: DurableContext):
    return {"child": context.run_in_child_context(inside, name="group")}
""",
    "nested_children": """
@durable_with_child_context
def leaf(child: DurableContext, n: int):
    child.wait(Duration(1), name="leaf wait")
    return child.step(lambda _: n * 3, name="leaf step")

def middle(child: DurableContext):
    return child.run_in_child_context(leaf(5)) + child.step(lambda _: 1, name="middle step")

@durable_execution
def handler(event, context: DurableContext):
    top = context.run_in_child_context(middle, name="middle")
    return context.run_in_child_context(lambda c: c.step(lambda _: top + 100, name="last"), name="tail")
""",
    "child_failure_caught": """
@durable_execution
def handler(event, context: DurableContext):
    def breaks(child: DurableContext):
        child.step(lambda _: int("x"), name="parse", config=StepConfig(retry_strategy=RetryPresets.none()))
    try:
        context.run_in_child_context(breaks, name="breaks")
    except ChildContextError as exc:
        return {"caught": type(exc).__name__}
""",
    "callback_success": """
@durable_execution
def handler(event, context: DurableContext):
    sent = []
    value = context.wait_for_callback(lambda cid, ctx: sent.append(cid), name="approval")
    return {"value": value}
""",
    "callback_failure": """
@durable_execution
def handler(event, context: DurableContext):
    try:
        context.wait_for_callback(lambda cid, ctx: None, name="approval")
    except CallbackError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
""",
    "callback_timeout": """
@durable_execution
def handler(event, context: DurableContext):
    try:
        context.wait_for_callback(lambda cid, ctx: None, name="approval",
                                  config=WaitForCallbackConfig(timeout=Duration(1)))
    except CallbackError as exc:
        return {"error": type(exc).__name__}
""",
    "callback_heartbeat_timeout": """
@durable_execution
def handler(event, context: DurableContext):
    try:
        context.wait_for_callback(lambda cid, ctx: None, name="approval",
                                  config=WaitForCallbackConfig(timeout=Duration(60), heartbeat_timeout=Duration(1)))
    except CallbackError as exc:
        return {"error": type(exc).__name__}
""",
    "create_callback_with_serdes": """
@durable_execution
def handler(event, context: DurableContext):
    callback = context.create_callback(name="approval create callback id", config=CallbackConfig(serdes=JsonSerDes()))
    context.step(lambda _: callback.callback_id and "notified", name="notify")
    decision = callback.result()
    return {"approved": decision["approved"]}
""",
    "submitter_fails": """
@durable_execution
def handler(event, context: DurableContext):
    def submit(callback_id, ctx):
        raise RuntimeError("mail server down")
    try:
        context.wait_for_callback(submit, name="approval",
                                  config=WaitForCallbackConfig(retry_strategy=RetryPresets.none()))
    except CallbackError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
""",
}

# wait_for_condition and invoke (issue 16): the same handlers on both runners, and the same
# history events. An invoke's target is registered on both runners under the name "child".
CHAINED_HANDLERS: dict[str, str] = {}
CHAINED_HANDLERS.update(
    {
        "wait_for_condition_polls": """
@durable_execution
def handler(event, context: DurableContext):
    strategy = create_wait_strategy(WaitStrategyConfig(
        should_continue_polling=lambda s: s["n"] < 3, max_attempts=5, initial_delay=Duration(2),
        jitter_strategy=JitterStrategy.NONE))
    def check(state, ctx):
        return {"n": state["n"] + 1, "attempts": state["attempts"] + [ctx.attempt]}
    return context.wait_for_condition(check, WaitForConditionConfig(
        wait_strategy=strategy, initial_state={"n": 0, "attempts": []}), name="poll")
""",
        "wait_for_condition_max_attempts": """
@durable_execution
def handler(event, context: DurableContext):
    strategy = create_wait_strategy(WaitStrategyConfig(
        should_continue_polling=lambda s: True, max_attempts=3, initial_delay=Duration(1), backoff_rate=3,
        jitter_strategy=JitterStrategy.NONE))
    try:
        config = WaitForConditionConfig(wait_strategy=strategy, initial_state=0)
        context.wait_for_condition(lambda s, ctx: s + 1, config, name="poll")
    except WaitForConditionError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
""",
        "wait_for_condition_check_raises": """
@durable_execution
def handler(event, context: DurableContext):
    def check(state, ctx):
        raise LookupError("no such job")
    strategy = create_wait_strategy(WaitStrategyConfig(should_continue_polling=lambda s: True))
    context.wait_for_condition(check, WaitForConditionConfig(wait_strategy=strategy, initial_state=0), name="poll")
""",
        "invoke_child": """
@durable_execution
def child(event, context: DurableContext):
    context.wait(Duration(2), name="child wait")
    return {"doubled": event["n"] * 2}

@durable_execution
def handler(event, context: DurableContext):
    got = context.invoke("child", {"n": event["a"]}, name="call")
    return {"got": got, "after": context.step(lambda _: "after", name="after")}
""",
        "invoke_failing_child": """
@durable_execution
def child(event, context: DurableContext):
    raise PermissionError("child refused")

@durable_execution
def handler(event, context: DurableContext):
    try:
        context.invoke("child", {"n": 1}, name="call")
    except InvokeError as exc:
        return {"error": type(exc).__name__, "type": exc.error_type, "message": str(exc)}
""",
        "invoke_stopped_child": """
@durable_execution
def child(event, context: DurableContext):
    return context.wait_for_callback(lambda callback_id, ctx: None, name="approval")

@durable_execution
def handler(event, context: DurableContext):
    try:
        return context.invoke("child", {"n": 1}, name="call")
    except InvokeError as exc:
        return {"error": type(exc).__name__, "type": exc.error_type, "message": str(exc)}
""",
        "invoke_unknown_function": """
@durable_execution
def child(event, context: DurableContext):
    return None

@durable_execution
def handler(event, context: DurableContext):
    try:
        context.invoke("nobody", {"n": 1}, name="call")
    except InvokeError as exc:
        return {"error": type(exc).__name__, "type": exc.error_type}
""",
    }
)

HANDLERS.update(
    {
        "with_retry_reruns_the_block": """
@durable_execution
def handler(event, context: DurableContext):
    def block(ctx: DurableContext, attempt: int):
        value = ctx.step(lambda _: bump("block"), name="count")
        if value < 3:
            raise RuntimeError(f"attempt {attempt} is too early")
        return {"attempt": attempt, "value": value}
    strategy = create_retry_strategy(RetryStrategyConfig(
        max_attempts=5, initial_delay=Duration(1), jitter_strategy=JitterStrategy.NONE))
    return with_retry(context, block, WithRetryConfig(retry_strategy=strategy), name="block")
""",
        "with_retry_unwrapped_gives_up": """
@durable_execution
def handler(event, context: DurableContext):
    def block(ctx: DurableContext, attempt: int):
        ctx.step(lambda _: attempt, name=f"try {attempt}")
        raise KeyError(f"attempt {attempt}")
    strategy = create_retry_strategy(RetryStrategyConfig(
        max_attempts=2, initial_delay=Duration(2), jitter_strategy=JitterStrategy.NONE))
    try:
        with_retry(context, block, WithRetryConfig(retry_strategy=strategy, wrap_with_run_in_child_context=False),
                   name="bare")
    except KeyError as exc:
        return {"gave_up": str(exc)}
""",
        "with_retry_wrapped_failure": """
@durable_execution
def handler(event, context: DurableContext):
    def block(ctx: DurableContext, attempt: int):
        raise ValueError("never")
    with_retry(context, block, WithRetryConfig(retry_strategy=RetryPresets.none()), name="doomed")
""",
        "decorated_submitter": """
@durable_wait_for_callback
def submit(callback_id: str, ctx, ticket: str, priority: int):
    ctx.logger.info("submitting %s at %s", ticket, priority)
    return f"{ticket}:{priority}"

@durable_execution
def handler(event, context: DurableContext):
    return {"value": context.wait_for_callback(submit("T-1", priority=2), name="approval")}
""",
        "execution_context_and_logger": """
@durable_execution
def handler(event, context: DurableContext):
    context.set_logger(logging.getLogger("ported handler"))
    context.logger.info("starting", extra={"stage": 1})
    arn = context.execution_context.durable_execution_arn
    first = context.step(lambda _: 1, name="first")
    context.wait(Duration(1), name="pause")
    def child(ctx: DurableContext):
        ctx.logger.warning("in the child")
        return ctx.step(lambda _: 2, name="second")
    second = context.run_in_child_context(child, name="child")
    return {"has_arn": bool(arn), "sum": first + second, "replaying": context.is_replaying()}
""",
    }
)

# How each callback handler is completed: ("succeed", payload) or ("fail", message).
DRIVERS = {
    "callback_success": ("succeed", b"approved"),
    "callback_failure": ("fail", "rejected by reviewer"),
    "create_callback_with_serdes": ("succeed", b'{"approved": true}'),
    "decorated_submitter": ("succeed", b"done"),
}


def compile_module(source: str, sdk: str):
    module = types.ModuleType(f"port_{sdk}")
    exec(textwrap.dedent(PRELUDE.format(sdk=sdk) + source), module.__dict__)
    return module


def compile_handler(source: str, sdk: str):
    return compile_module(source, sdk).handler


def flatten(operations) -> list:
    flat = []
    for op in operations:
        flat.append(op)
        flat.extend(flatten(getattr(op, "child_operations", []) or []))
    return flat


def op_sequence(operations) -> list[tuple]:
    def value(x):
        return getattr(x, "value", x)

    ops = {op.operation_id: op for op in flatten(operations)}.values()  # children are listed twice
    return sorted(
        (
            value(op.operation_type),
            op.sub_type,
            op.name,
            value(op.status),
            getattr(op, "attempt", 0) or 0,
            op.operation_id,
            op.parent_id,
        )
        for op in ops
    )


def invoked_child(runner, arn: str) -> str | None:
    """The execution the handler's invoke started, from its ChainedInvokeStarted event."""
    if isinstance(runner, DurableTestRunner):
        events = runner.get_execution_history(arn)["Events"]
    else:
        events = [e.to_dict() for e in runner.get_execution_history(arn).events]
    started = [e for e in events if e["EventType"] == "ChainedInvokeStarted"]
    return started[0]["ChainedInvokeStartedDetails"]["DurableExecutionArn"] if started else None


def stop_invoked_child(runner, arn: str) -> None:
    """Stop the child execution the handler invoked, once it waits for its callback."""
    if isinstance(runner, DurableTestRunner):
        runner.step_once(arn)  # ours advances only inside its calls
    for _ in range(600):  # the official runner starts the child in the background
        child_arn = invoked_child(runner, arn)
        if child_arn:
            break
        time.sleep(0.05)
    runner.wait_for_callback(child_arn, name="approval create callback id", timeout=30)
    if isinstance(runner, DurableTestRunner):
        stop_execution(child_arn, error={"ErrorType": "Cancelled", "ErrorMessage": "not needed"})
    else:
        error = ErrorObject(message="not needed", type="Cancelled", data=None, stack_trace=None)
        runner._executor.stop_execution(child_arn, error)  # the official runner's own stop


def run_on(runner, event: str, name: str):
    """The same calls on both runners (the same class of runner, too: ours is the official one's
    port); returns the result and the history."""
    arn = runner.run_async(input=event, execution_timeout=3600)
    if name in DRIVERS:
        action, payload = DRIVERS[name]
        callback_id = runner.wait_for_callback(arn, name="approval create callback id", timeout=30)
        if action == "succeed":
            runner.send_callback_success(callback_id, payload)
        else:
            runner.send_callback_failure(
                callback_id, ErrorObject(message=payload, type="Rejected", data=None, stack_trace=None)
            )
    return runner.wait_for_result(arn, timeout=30), runner.get_execution_history(arn, include_execution_data=True)


def error_type(error_type: str | None) -> str | None:
    # The official SDK qualifies a class's name with its module (ours does not); the service's own
    # types ("Callback.Timeout") are compared whole.
    return re.sub(r"^(?:[a-z_][a-z0-9_]*\.)+", "", error_type) if error_type else error_type


def event_error(event) -> tuple | None:
    for attribute in ("step", "callback", "context", "execution"):
        for outcome in ("failed", "timed_out"):
            details = getattr(event, f"{attribute}_{outcome}_details", None)
            if details is not None and details.error is not None:
                payload = details.error.payload
                return error_type(payload.type), payload.message
    return None


def history_shape(history) -> list[tuple]:
    """Each event's type, operation, name, sub type and error. Not compared: the invocations'
    own events (each runner decides when to invoke), times, and the execution's name (the official
    runner names every execution "execution-name"; ours names each uniquely)."""
    return [
        (
            event.event_type,
            None if event.event_type.startswith("Execution") else event.operation_id,
            None if event.event_type.startswith("Execution") else event.name,
            event.sub_type,
            event.parent_id,
            event_error(event),
        )
        for event in history.events
        if event.event_type != "InvocationCompleted"
    ]


def operation_errors(operations) -> list[tuple]:
    ops = {op.operation_id: op for op in flatten(operations)}.values()
    return sorted(
        (op.operation_id, error_type(op.error.type), op.error.message)
        for op in ops
        if getattr(op, "error", None) is not None
    )


def run_chained_on(runner, event: str, name: str):
    """Run the handler; returns the execution's id on that runner and its result."""
    arn = runner.run_async(input=event, execution_timeout=3600)
    if name == "invoke_stopped_child":
        stop_invoked_child(runner, arn)
    if name not in DRIVERS:
        return arn, runner.wait_for_result(arn, timeout=60)
    action, payload = DRIVERS[name]
    callback_id = runner.wait_for_callback(arn, name="approval create callback id", timeout=30)
    if action == "succeed":
        runner.send_callback_success(callback_id, payload)
    else:
        runner.send_callback_failure(
            callback_id, ErrorObject(message=payload, type="Rejected", data=None, stack_trace=None)
        )
    return arn, runner.wait_for_result(arn, timeout=30)


def test_there_are_at_least_fifteen_handlers():
    assert len(HANDLERS) >= 15


def operation_events(events: list[dict]) -> list[tuple]:
    """The operations' events, in order: type, sub type, name, and the details both record alike."""
    shown = []
    for event in events:
        if not event.get("Id") or event["EventType"].startswith(("Execution", "Invocation")):
            continue
        details = event.get(f"{event['EventType']}Details") or {}
        error = ((details.get("Error") or {}).get("Payload") or {}).get("ErrorType")
        shown.append(
            (
                event["EventType"],
                event.get("SubType"),
                event.get("Name"),
                details.get("RetryDetails"),
                details.get("FunctionName"),
                error.rsplit(".", 1)[-1] if error else None,
            )
        )
    return shown


@pytest.mark.parametrize("name", sorted(HANDLERS))
def test_the_same_handler_gives_the_same_result_on_both_runners(name):
    event = json.dumps({"a": 2, "b": 3})
    official_handler = compile_handler(HANDLERS[name], "aws_durable_execution_sdk_python")
    with DurableFunctionTestRunner(handler=official_handler, poll_interval=0.05) as runner:
        theirs, their_history = run_on(runner, event, name)
    our_handler = compile_handler(HANDLERS[name], "durable")
    with OurRunner(handler=our_handler, poll_interval=0.05) as runner:
        ours, our_history = run_on(runner, event, name)
    assert ours.status.value == theirs.status.value
    assert ours.execution_status.value == theirs.execution_status.value
    assert (json.loads(ours.result) if ours.result else None) == (json.loads(theirs.result) if theirs.result else None)
    assert (ours.error is None) == (theirs.error is None)
    if theirs.error is not None:
        assert error_type(ours.error.type) == error_type(theirs.error.type)
        assert ours.error.message == theirs.error.message
    assert op_sequence(ours.operations) == op_sequence(theirs.operations)
    assert operation_errors(ours.operations) == operation_errors(theirs.operations)
    assert history_shape(our_history) == history_shape(their_history)


def test_a_callback_time_out_records_the_services_error_types_on_both_runners():
    # What the history and the callback operation record (not only what the handler sees).
    for name, expected in (
        ("callback_timeout", "Callback.Timeout"),
        ("callback_heartbeat_timeout", "Callback.Heartbeat"),
    ):
        recorded = []
        for sdk, runner_class in (
            ("aws_durable_execution_sdk_python", DurableFunctionTestRunner),
            ("durable", OurRunner),
        ):
            with runner_class(handler=compile_handler(HANDLERS[name], sdk), poll_interval=0.05) as runner:
                result, history = run_on(runner, "{}", name)
            callback = result.get_context("approval").get_callback("approval create callback id")
            timed_out = [event_error(e) for e in history.events if e.event_type == "CallbackTimedOut"]
            recorded.append((callback.status.value, callback.error.type, callback.error.message, timed_out))
        assert recorded[0] == recorded[1]
        assert recorded[0][:2] == ("TIMED_OUT", expected)


@pytest.mark.parametrize("name", sorted(CHAINED_HANDLERS))
def test_wait_for_condition_and_invoke_give_the_same_operations_and_events_on_both_runners(name):
    # An invoke's target is registered on both runners under the name "child"; ours runs on the
    # engine's step-by-step runner, which drives invoked executions too.
    event = json.dumps({"a": 2, "b": 3})
    official = compile_module(CHAINED_HANDLERS[name], "aws_durable_execution_sdk_python")
    with DurableFunctionTestRunner(handler=official.handler, poll_interval=0.05) as runner:
        if hasattr(official, "child"):
            runner.register_durable_function("child", official.child)
        arn, theirs = run_chained_on(runner, event, name)
        history = runner.get_execution_history(arn)
        their_events = operation_events([e.to_dict() for e in history.events])
    ours_module = compile_module(CHAINED_HANDLERS[name], "durable")
    with DurableTestRunner(ours_module.handler) as runner:
        if hasattr(ours_module, "child"):
            runner.register_durable_function("child", ours_module.child)
        arn, ours = run_chained_on(runner, event, name)
        assert operation_events(runner.get_execution_history(arn)["Events"]) == their_events
    assert ours.status == theirs.status.value
    assert (json.loads(ours.result) if ours.result else None) == (json.loads(theirs.result) if theirs.result else None)
    assert (ours.error is None) == (theirs.error is None)
    assert op_sequence(ours.operations) == op_sequence(theirs.operations)
