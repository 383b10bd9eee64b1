"""Every loop is bounded: invocations that fail, callbacks nobody awaits, exceptions that are not
`Exception`s, and the test runner's own timeout."""

import asyncio
import itertools
import json
import time
from datetime import datetime, timedelta

import pytest

from durable import (
    DurableContext,
    InvocationError,
    RetryPresets,
    StepConfig,
    StepError,
    durable_execution,
)
from durable.config import CallbackConfig, Duration
from durable.models import Execution, HistoryEvent
from durable.runtime import run_invocation
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

runs: list[str] = []


@pytest.fixture(autouse=True)
def _reset():
    runs.clear()


@durable_execution(name="tests.loops.invocation_error")
def keeps_failing_its_invocation(event: dict, context: DurableContext) -> str:
    context.step(lambda _: runs.append("step"), name="once")
    runs.append("handler")
    if runs.count("handler") <= (event or {}).get("failures", 10**6):
        raise InvocationError("the downstream service is not ready")
    return "done"


def test_an_invocation_error_backs_off_and_is_bounded(settings):
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "INVOCATION_DEATHS_LIMIT": 4}
    with DurableTestRunner(keeps_failing_its_invocation) as runner:
        started = runner.clock.current
        result = runner.run(timeout=10)
    assert result.status == "FAILED"
    assert result.error["ErrorType"] == "InvocationError"
    message = result.error["ErrorMessage"]
    assert "4 invocations in a row" in message
    assert "the downstream service is not ready" in message
    assert runner.invocations == 4
    assert runs.count("step") == 1  # the completed step is not run again
    # Each retry waited longer than the one before (1, 2, 4 s): no re-invocation at once.
    starts = [
        datetime.fromisoformat(e.details["StartTimestamp"])
        for e in HistoryEvent.objects.filter(execution_id=result.execution_id, event_type="InvocationCompleted")
    ]
    deltas = [round((b - a).total_seconds()) for a, b in itertools.pairwise(starts)]
    assert deltas == [1, 2, 4], deltas
    assert starts[0] == started


def test_an_invocation_error_that_clears_lets_the_execution_go_on(settings):
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "INVOCATION_DEATHS_LIMIT": 4}
    with DurableTestRunner(keeps_failing_its_invocation) as runner:
        result = runner.run(json.dumps({"failures": 2}), timeout=10)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == "done"
    assert runner.invocations == 3
    assert Execution.objects.get(pk=result.execution_id).failed_invocations == 0


@durable_execution(name="tests.loops.unawaited_callback")
def unawaited_callback(event: dict, context: DurableContext) -> str:
    def hand_out(child: DurableContext) -> str:
        callback = child.create_callback(name="maybe later", config=CallbackConfig(timeout=Duration(60)))
        return callback.callback_id

    context.run_in_child_context(hand_out, name="hand out")
    context.wait(Duration.from_hours(1), name="an hour")
    return "done"


def test_a_callback_nobody_awaits_does_not_keep_the_execution_due():
    with DurableTestRunner(unawaited_callback) as runner:
        execution_id = runner.run_async()
        assert runner.step_once(execution_id)
        execution = Execution.objects.get(pk=execution_id)
        # Only what the handler suspended on can move it: the hour, not the callback's minute.
        assert execution.wake_at == runner.clock.current + timedelta(hours=1)
        runner.clock.advance_to(runner.clock.current + timedelta(minutes=2))
        run_invocation(execution_id)
        assert Execution.objects.get(pk=execution_id).wake_at == execution.wake_at
        result = runner.wait_for_result(execution_id, timeout=3)
    assert result.status == "SUCCEEDED"
    assert runner.invocations <= 3


def test_the_test_runner_honours_its_timeout(settings):
    # Invocations that keep failing with a limit too high to reach: the runner gives up on time.
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "INVOCATION_DEATHS_LIMIT": 10**6}
    with DurableTestRunner(keeps_failing_its_invocation) as runner:
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            runner.run(timeout=1)
    assert time.monotonic() - began < 10


@durable_execution(name="tests.loops.cancelled_step")
def cancelled_step(event: dict, context: DurableContext) -> dict:
    def cancelled(_):
        runs.append("cancelled")
        raise asyncio.CancelledError("the request was cancelled")

    config = StepConfig(retry_strategy=RetryPresets.none()) if (event or {}).get("no_retry") else None
    try:
        context.step(cancelled, name="cancelled", config=config)
    except StepError as exc:
        return {"error_type": exc.error_type, "message": exc.message}
    return {}


def test_a_step_raising_a_base_exception_fails_as_a_step_with_its_real_type():
    with DurableTestRunner(cancelled_step) as runner:
        result = runner.run(json.dumps({"no_retry": True}))
    assert result.status == "SUCCEEDED", result.error
    assert json.loads(result.result) == {"error_type": "CancelledError", "message": "the request was cancelled"}
    assert runs == ["cancelled"]
    assert runner.invocations == 1
    assert Execution.objects.get(pk=result.execution_id).consecutive_deaths == 0


def test_a_step_raising_a_base_exception_is_retried_per_its_strategy():
    with DurableTestRunner(cancelled_step) as runner:
        result = runner.run()
    assert json.loads(result.result)["error_type"] == "CancelledError"
    assert runs == ["cancelled"] * 6  # the default strategy: 6 attempts
    assert result.get_step("cancelled").attempt == 6


@durable_execution(name="tests.loops.cancelled_handler")
def cancelled_handler(event: dict, context: DurableContext) -> None:
    context.step(lambda _: 1, name="one")
    raise asyncio.CancelledError("the handler gave up")


def test_a_handler_raising_a_base_exception_fails_the_execution_with_its_real_type():
    with DurableTestRunner(cancelled_handler) as runner:
        result = runner.run()
    assert result.status == "FAILED"
    assert (result.error["ErrorType"], result.error["ErrorMessage"]) == ("CancelledError", "the handler gave up")
    assert runner.invocations == 1


@durable_execution(name="tests.loops.exits")
def exits(event: dict, context: DurableContext) -> None:
    context.step(lambda _: (_ for _ in ()).throw(SystemExit(3)), name="exits")


def test_what_the_process_cannot_survive_still_ends_the_invocation():
    with DurableTestRunner(exits) as runner:
        execution_id = runner.run_async()
        with pytest.raises(SystemExit):
            run_invocation(execution_id)
    # The lease is left to expire: the next invocation counts this one as dead.
    assert Execution.objects.get(pk=execution_id).lease_token is not None
