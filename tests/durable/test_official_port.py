"""Handlers written for the official SDK run on ours by changing the import prefix only.

Each handler's source is written once with `{sdk}` as the import prefix, then compiled twice:
against `aws_durable_execution_sdk_python` (run on the official testing runner) and against
`durable` (run on ours). Results and operation sequences must be the same.
"""

import json
import textwrap
import types

import pytest
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

PRELUDE = """
from {sdk}.config import Duration, JitterStrategy, StepConfig, StepSemantics
from {sdk}.context import DurableContext, durable_step
from {sdk}.execution import durable_execution
from {sdk}.retries import RetryPresets, RetryStrategyConfig, create_retry_strategy
from {sdk}.types import StepContext
from {sdk}.exceptions import StepError
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
}


def compile_handler(source: str, sdk: str):
    module = types.ModuleType(f"port_{sdk}")
    exec(textwrap.dedent(PRELUDE.format(sdk=sdk) + source), module.__dict__)
    return module.handler


def op_sequence(operations) -> list[tuple]:
    def value(x):
        return getattr(x, "value", x)

    return [
        (value(op.operation_type), op.sub_type, op.name, value(op.status), getattr(op, "attempt", 0) or 0)
        for op in operations
    ]


@pytest.mark.parametrize("name", sorted(HANDLERS))
def test_the_same_handler_gives_the_same_result_on_both_runners(name):
    event = json.dumps({"a": 2, "b": 3})
    official_handler = compile_handler(HANDLERS[name], "aws_durable_execution_sdk_python")
    with DurableFunctionTestRunner(handler=official_handler) as runner:
        theirs = runner.run(input=event, execution_timeout=3600)
    our_handler = compile_handler(HANDLERS[name], "durable")
    with DurableTestRunner(our_handler) as runner:
        ours = runner.run(input=event, execution_timeout=3600)
    assert ours.status == theirs.status.value
    assert (json.loads(ours.result) if ours.result else None) == (json.loads(theirs.result) if theirs.result else None)
    if theirs.error is not None:
        assert ours.error["ErrorType"] == theirs.error.type.rsplit(".", 1)[-1]
        assert ours.error["ErrorMessage"] == theirs.error.message
    assert op_sequence(ours.operations) == op_sequence(theirs.operations)
    assert [op.operation_id for op in ours.operations] == [op.operation_id for op in theirs.operations]
