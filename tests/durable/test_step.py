import json
import time
from datetime import timedelta

import pytest

from durable import (
    DurableContext,
    StepConfig,
    StepContext,
    StepSemantics,
    durable_execution,
    durable_step,
)
from durable.config import Duration, JitterStrategy
from durable.models import Operation
from durable.retries import RetryPresets, RetryStrategyConfig, create_retry_strategy
from durable.runtime import run_invocation
from durable.testing import DurableTestRunner
from tests.durable.helpers import Crash, crash_then_expire_lease

pytestmark = pytest.mark.django_db

side_effects: dict[str, int] = {}
attempts_seen: list[int] = []


@pytest.fixture(autouse=True)
def _reset():
    side_effects.clear()
    attempts_seen.clear()


def bump(key: str) -> int:
    side_effects[key] = side_effects.get(key, 0) + 1
    return side_effects[key]


@durable_step
def charge(step: StepContext, amount: int) -> dict:
    bump("charge")
    return {"charged": amount}


@durable_execution(name="tests.step.replay")
def replay_handler(event: dict, context: DurableContext) -> dict:
    first = context.step(charge(event["amount"]))
    context.wait(Duration.from_seconds(30), name="cool-off")
    second = context.step(lambda _: bump("second"), name="second")
    return {"first": first, "second": second}


def test_replay_skips_completed_steps():
    with DurableTestRunner(replay_handler) as runner:
        result = runner.run(input=json.dumps({"amount": 42}))
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == {"first": {"charged": 42}, "second": 1}
    # Two invocations (before and after the wait); the first step ran in the first only.
    assert runner.invocations == 2
    assert side_effects == {"charge": 1, "second": 1}
    assert result.get_step("charge").status == "SUCCEEDED"


@durable_execution(name="tests.step.retry")
def retry_handler(event: dict, context: DurableContext) -> dict:
    def flaky(step: StepContext) -> int:
        bump("flaky")
        attempts_seen.append(step.attempt)
        if step.attempt < 3:
            raise ConnectionError(f"attempt {step.attempt} failed")
        return step.attempt

    strategy = create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=5,
            initial_delay=Duration(10),
            backoff_rate=3,
            jitter_strategy=JitterStrategy.NONE,
        )
    )
    return {"attempt": context.step(flaky, name="flaky", config=StepConfig(retry_strategy=strategy))}


def test_retries_back_off_while_suspended_and_the_attempt_reaches_the_step():
    started = time.monotonic()
    with DurableTestRunner(retry_handler) as runner:
        execution_id = runner.run_async()
        assert runner.step_once(execution_id)  # attempt 1 failed; suspended
        op = Operation.objects.get(execution_id=execution_id, name="flaky")
        assert (op.status, op.attempt) == ("PENDING", 1)
        first_delay = op.next_attempt_at - runner.clock.current
        assert first_delay == timedelta(seconds=10)
        runner.clock.advance_to(op.next_attempt_at - timedelta(seconds=1))
        assert runner.step_once(execution_id)  # not due yet: nothing runs
        assert side_effects["flaky"] == 1
        runner.clock.advance_to(op.next_attempt_at)
        assert runner.step_once(execution_id)  # attempt 2 failed
        op.refresh_from_db()
        assert (op.status, op.attempt) == ("PENDING", 2)
        assert op.next_attempt_at - runner.clock.current == timedelta(seconds=30)  # 10 * 3
        result = runner.wait_for_result(execution_id)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == {"attempt": 3}
    assert side_effects["flaky"] == 3
    assert attempts_seen == [1, 2, 3]
    # Nothing slept: 40 seconds of backoff passed on the fake clock.
    assert time.monotonic() - started < 5
    events = [e["EventType"] for e in runner.get_execution_history(execution_id)["Events"]]
    assert events.count("StepFailed") == 2
    assert events.count("StepSucceeded") == 1


@durable_execution(name="tests.step.exhausted")
def exhausted_handler(event: dict, context: DurableContext) -> str:
    def always(step: StepContext) -> None:
        bump("always")
        raise ValueError("bad input")

    strategy = create_retry_strategy(RetryStrategyConfig(max_attempts=2, jitter_strategy=JitterStrategy.NONE))
    context.step(always, name="always", config=StepConfig(retry_strategy=strategy))
    return "unreachable"


def test_exhausted_retries_fail_the_step_and_the_execution():
    with DurableTestRunner(exhausted_handler) as runner:
        result = runner.run()
    assert result.status == "FAILED"
    assert side_effects["always"] == 2
    assert result.error["ErrorType"] == "StepError"
    assert result.error["ErrorMessage"] == "bad input"
    assert result.get_step("always").error["ErrorType"] == "ValueError"
    step = result.get_step("always")
    assert (step.status, step.attempt) == ("FAILED", 2)


@durable_execution(name="tests.step.caught")
def caught_handler(event: dict, context: DurableContext) -> dict:
    def boom(step: StepContext) -> None:
        bump("boom")
        raise KeyError("missing")

    try:
        context.step(boom, name="boom", config=StepConfig(retry_strategy=RetryPresets.none()))
    except Exception as exc:  # the handler may recover from a failed step
        caught = f"{type(exc).__name__}: {exc}"
    after = context.step(lambda _: bump("after"), name="after")
    return {"caught": caught, "after": after}


def test_a_failed_step_raises_step_error_the_same_way_on_replay():
    with DurableTestRunner(caught_handler) as runner:
        execution_id = runner.run_async()
        result = runner.wait_for_result(execution_id)
        assert result.status == "SUCCEEDED"
        first = json.loads(result.result)
        # A fresh invocation replaying the same journal sees the same error, and runs nothing.
        from durable.models import Execution

        Execution.objects.filter(pk=execution_id).update(status="RUNNING", wake_at=runner.clock.current)
        run_invocation(execution_id)
    assert first == {"caught": "StepError: 'missing'", "after": 1}
    assert Execution.objects.get(pk=execution_id).result == result.result
    assert side_effects == {"boom": 1, "after": 1}


@durable_execution(name="tests.step.at_most_once")
def at_most_once_handler(event: dict, context: DurableContext) -> dict:
    def pay(step: StepContext) -> int:
        count = bump(f"pay-attempt-{step.attempt}")
        if step.attempt == 1 and count == 1:
            raise Crash  # the worker dies in the middle of the body
        return step.attempt

    strategy = (
        RetryPresets.none()
        if event.get("no_retry")
        else create_retry_strategy(RetryStrategyConfig(max_attempts=3, jitter_strategy=JitterStrategy.NONE))
    )
    config = StepConfig(retry_strategy=strategy, step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY)
    return {"attempt": context.step(pay, name="pay", config=config)}


def test_at_most_once_step_interrupted_mid_run_is_retried_per_its_strategy():
    with DurableTestRunner(at_most_once_handler) as runner:
        execution_id = runner.run_async(json.dumps({}))
        crash_then_expire_lease(runner, execution_id)
        op = Operation.objects.get(execution_id=execution_id, name="pay")
        assert (op.status, op.attempt) == ("STARTED", 1)  # STARTED was on disk before the body
        result = runner.wait_for_result(execution_id)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == {"attempt": 2}
    # Attempt 1's body ran once (and was interrupted); it never ran again.
    assert side_effects == {"pay-attempt-1": 1, "pay-attempt-2": 1}
    failed = [e for e in runner.get_execution_history(execution_id)["Events"] if e["EventType"] == "StepFailed"]
    assert failed[0]["StepFailedDetails"]["Error"]["Payload"]["ErrorType"] == "StepInterruptedError"


def test_at_most_once_step_interrupted_without_retries_fails():
    with DurableTestRunner(at_most_once_handler) as runner:
        execution_id = runner.run_async(json.dumps({"no_retry": True}))
        crash_then_expire_lease(runner, execution_id)
        result = runner.wait_for_result(execution_id)
    assert result.status == "FAILED"
    assert result.error["ErrorType"] == "StepError"
    assert "was interrupted" in result.error["ErrorMessage"]
    assert result.get_step("pay").error["ErrorType"] == "StepInterruptedError"
    assert side_effects == {"pay-attempt-1": 1}


@durable_execution(name="tests.step.at_least_once")
def at_least_once_handler(event: dict, context: DurableContext) -> dict:
    before = context.step(lambda _: bump("before"), name="before")

    def send(step: StepContext) -> int:
        if bump("send") == 1:
            raise Crash
        return step.attempt

    return {"before": before, "attempt": context.step(send, name="send")}


def test_at_least_once_step_interrupted_mid_run_runs_again():
    with DurableTestRunner(at_least_once_handler) as runner:
        execution_id = runner.run_async()
        crash_then_expire_lease(runner, execution_id)
        result = runner.wait_for_result(execution_id)
    assert result.status == "SUCCEEDED"
    # The interrupted attempt runs again as the same attempt; the completed step does not.
    assert json.loads(result.result) == {"before": 1, "attempt": 1}
    assert side_effects == {"before": 1, "send": 2}


class Unserializable:
    pass


@durable_execution(name="tests.step.unserializable")
def unserializable_handler(event: dict, context: DurableContext) -> None:
    context.step(lambda _: Unserializable(), name="make-object")


def test_unserializable_step_result_fails_naming_the_step_and_the_type():
    with DurableTestRunner(unserializable_handler) as runner:
        result = runner.run()
    assert result.status == "FAILED"
    message = result.error["ErrorMessage"]
    assert "'make-object'" in message
    assert "tests.durable.test_step.Unserializable" in message
    step = result.get_step("make-object")
    assert step.status == "FAILED"
    assert step.attempt == 1  # not retried: serialization fails the same way every time


@durable_execution(name="tests.step.typed")
def typed_handler(event: dict, context: DurableContext) -> str:
    import datetime
    import decimal
    import uuid

    value = context.step(
        lambda _: (
            {1: "int key"},
            datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            decimal.Decimal("1.10"),
            uuid.UUID(int=7),
            b"\x00bytes",
        ),
        name="typed",
    )
    context.wait(Duration(1))
    # After the wait this is a replay: the types must be the same as on the first run.
    return repr(value) + " " + repr(tuple(type(v).__name__ for v in value))


def test_step_results_keep_their_types_across_replay():
    with DurableTestRunner(typed_handler) as runner:
        result = runner.run()
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result).endswith("('dict', 'datetime', 'Decimal', 'UUID', 'bytes')")
    assert "{1: 'int key'}" in json.loads(result.result)
