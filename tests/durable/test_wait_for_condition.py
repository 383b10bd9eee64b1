"""wait_for_condition: polls on a state kept in the journal, suspending between polls."""

import json
from datetime import timedelta

import pytest

from durable import DurableContext, durable_execution
from durable.config import Duration, JitterStrategy
from durable.exceptions import InvocationError, ValidationError, WaitForConditionError
from durable.models import Execution, HistoryEvent, Operation
from durable.testing import DurableTestRunner
from durable.waits import WaitForConditionConfig, WaitForConditionDecision, WaitStrategyConfig, create_wait_strategy

pytestmark = pytest.mark.django_db

CHECKS: list[dict] = []


def strategy(max_attempts: int, until: int = 3):
    return create_wait_strategy(
        WaitStrategyConfig(
            should_continue_polling=lambda s: s["n"] < until,
            max_attempts=max_attempts,
            initial_delay=Duration(2),
            backoff_rate=2,
            max_delay=Duration(5),
            jitter_strategy=JitterStrategy.NONE,
        )
    )


def count_up(state: dict, check) -> dict:
    CHECKS.append({"state": state, "attempt": check.attempt})
    return {"n": state["n"] + 1}


@durable_execution(name="tests.wfc.poll")
def poll_handler(event: dict, context: DurableContext) -> dict:
    config = WaitForConditionConfig(wait_strategy=strategy(event["max"]), initial_state={"n": 0})
    try:
        return context.wait_for_condition(count_up, config, name="poll")
    except WaitForConditionError as exc:
        return {"error": type(exc).__name__, "error_type": exc.error_type, "message": str(exc)}


def test_polls_suspend_between_checks_with_backoff_and_return_the_last_state():
    CHECKS.clear()
    with DurableTestRunner(poll_handler) as runner:
        start = runner.clock.current
        execution_id = runner.run_async(json.dumps({"max": 5}))
        # The first invocation polls once, stores the state and suspends until the next poll.
        assert runner.step_once(execution_id)
        op = Operation.objects.get(execution_id=execution_id, name="poll")
        assert (op.type, op.sub_type, op.status, op.attempt) == ("STEP", "WaitForCondition", "PENDING", 1)
        assert json.loads(op.result) == {"n": 1}
        execution = Execution.objects.get(pk=execution_id)
        assert execution.wake_at == start + timedelta(seconds=2)
        assert execution.lease_token is None  # nothing holds the execution between polls
        result = runner.wait_for_result(execution_id)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == {"n": 3}
    # Each check saw the state the previous one stored, and its own attempt number.
    assert CHECKS == [
        {"state": {"n": 0}, "attempt": 1},
        {"state": {"n": 1}, "attempt": 2},
        {"state": {"n": 2}, "attempt": 3},
    ]
    step = result.get_step("poll")
    assert (step.status, step.attempt) == ("SUCCEEDED", 3)
    # Backoff 2 s, then 4 s (x2): the polls ran at +0, +2 and +6 seconds.
    assert step.end_timestamp - start == timedelta(seconds=6)
    events = [
        (e.event_type, e.details)
        for row in HistoryEvent.objects.filter(execution_id=execution_id, name="poll").order_by("id")
        for e in row.events()
    ]
    assert [e for e, _ in events] == ["StepStarted", "StepSucceeded"] * 3
    assert [d.get("RetryDetails") for e, d in events if e == "StepSucceeded"] == [
        {"CurrentAttempt": 1, "NextAttemptDelaySeconds": 2},
        {"CurrentAttempt": 2, "NextAttemptDelaySeconds": 4},
        None,
    ]


def test_max_attempts_end_it_with_wait_for_condition_error():
    CHECKS.clear()
    with DurableTestRunner(poll_handler) as runner:
        result = runner.run(json.dumps({"max": 2}))
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == {
        "error": "WaitForConditionError",
        "error_type": "WaitForConditionError",
        "message": "wait_for_condition exhausted 2 attempts before the condition was met",
    }
    assert len(CHECKS) == 2
    step = result.get_step("poll")
    assert (step.status, step.attempt) == ("FAILED", 2)
    assert step.error["ErrorType"] == "WaitForConditionError"


@durable_execution(name="tests.wfc.replay")
def replay_handler(event: dict, context: DurableContext) -> dict:
    config = WaitForConditionConfig(wait_strategy=strategy(5, until=2), initial_state={"n": 0})
    found = context.wait_for_condition(count_up, config, name="poll")
    context.wait(Duration(10), name="after")
    return found


def test_a_finished_poll_is_not_run_again_on_replay():
    CHECKS.clear()
    with DurableTestRunner(replay_handler) as runner:
        result = runner.run()
        invocations = runner.invocations
    assert json.loads(result.result) == {"n": 2}
    assert invocations == 3  # two polls, then the wait's end
    assert len(CHECKS) == 2  # the third invocation replayed the stored state


@durable_execution(name="tests.wfc.check_fails")
def failing_check_handler(event: dict, context: DurableContext) -> None:
    def check(state, _):
        raise ConnectionError("status endpoint down")

    context.wait_for_condition(check, WaitForConditionConfig(wait_strategy=strategy(5), initial_state={"n": 0}))


def test_a_check_that_raises_fails_at_once_with_the_original_type():
    with DurableTestRunner(failing_check_handler) as runner:
        result = runner.run()
    assert result.status == "FAILED"
    assert result.error["ErrorType"] == "WaitForConditionError"
    assert result.error["ErrorMessage"] == "status endpoint down"
    (op,) = result.operations
    assert (op.status, op.attempt, op.error["ErrorType"]) == ("FAILED", 1, "ConnectionError")


@durable_execution(name="tests.wfc.custom_strategy")
def custom_strategy_handler(event: dict, context: DurableContext) -> list:
    def custom(state: list, attempt: int) -> WaitForConditionDecision:
        if len(state) >= 2:
            return WaitForConditionDecision.stop_polling()
        return WaitForConditionDecision.continue_waiting(Duration(0))  # raised to the 1 s minimum

    # A tuple goes through the extended serdes: the check sees a tuple on every poll.
    def check(state: tuple, ctx) -> tuple:
        assert isinstance(state, tuple)
        return (*state, ctx.attempt)

    return list(context.wait_for_condition(check, WaitForConditionConfig(wait_strategy=custom, initial_state=())))


def test_a_custom_strategy_and_a_typed_state():
    with DurableTestRunner(custom_strategy_handler) as runner:
        start = runner.clock.current
        result = runner.run()
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == [1, 2]
    assert result.operations[0].end_timestamp - start == timedelta(seconds=1)


def test_check_and_config_are_required():
    @durable_execution(name="tests.wfc.no_config")
    def handler(event, context: DurableContext):
        context.wait_for_condition(lambda s, c: s, None)  # type: ignore[arg-type]

    with DurableTestRunner(handler) as runner:
        result = runner.run()
    assert result.error["ErrorType"] == ValidationError.__name__
    assert "`config` is required" in result.error["ErrorMessage"]


def test_the_strategy_backs_off_caps_and_jitters_within_bounds():
    wait = create_wait_strategy(
        WaitStrategyConfig(should_continue_polling=lambda s: True, max_attempts=10, initial_delay=Duration(5))
    )
    for attempt in range(1, 10):
        decision = wait(None, attempt)
        base = min(5 * 1.5 ** (attempt - 1), 300)
        assert decision.should_continue
        assert 1 <= decision.delay_seconds <= int(base) + 1
    with pytest.raises(WaitForConditionError, match="exhausted 10 attempts"):
        wait(None, 10)
    # The condition met on the last attempt still succeeds.
    done = create_wait_strategy(WaitStrategyConfig(should_continue_polling=lambda s: False, max_attempts=1))
    assert done(None, 1) == WaitForConditionDecision.stop_polling()


FLAKY: list[int] = []


@durable_execution(name="tests.wfc.invocation_error")
def invocation_error_handler(event: dict, context: DurableContext) -> dict:
    def check(state: dict, ctx) -> dict:
        FLAKY.append(ctx.attempt)
        if len(FLAKY) == 1:
            raise InvocationError("the status service's client is not ready")
        return {"n": 3}

    return context.wait_for_condition(check, WaitForConditionConfig(wait_strategy=strategy(5), initial_state={"n": 0}))


def test_an_invocation_error_in_the_check_runs_the_same_poll_again():
    FLAKY.clear()
    with DurableTestRunner(invocation_error_handler) as runner:
        result = runner.run()
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == {"n": 3}
    assert FLAKY == [1, 1]  # the same first poll, once the invocation was retried
    assert (result.operations[0].status, result.operations[0].attempt) == ("SUCCEEDED", 1)
