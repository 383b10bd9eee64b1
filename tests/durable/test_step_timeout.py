"""StepConfig.timeout (ours): an attempt that runs over fails with StepTimeoutError and retries."""

import contextlib
import json
import signal
import threading
import time

import pytest
from django.contrib.auth.models import User

from durable import DurableContext, StepConfig, durable_execution
from durable.config import Duration, JitterStrategy
from durable.exceptions import StepError, StepTimeoutError
from durable.operation.step_timeout import time_limit
from durable.retries import RetryPresets, RetryStrategyConfig, create_retry_strategy
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

ATTEMPTS: list[float] = []

RETRY_ONCE = create_retry_strategy(
    RetryStrategyConfig(max_attempts=2, initial_delay=Duration(1), jitter_strategy=JitterStrategy.NONE)
)


@durable_execution(name="tests.step_timeout.slow_then_fast")
def slow_then_fast(event: dict, context: DurableContext) -> str:
    def body(step) -> str:
        ATTEMPTS.append(time.monotonic())
        if step.attempt == 1:
            time.sleep(5)  # interrupted after 1 s
        return f"attempt {step.attempt}"

    return context.step(body, name="call", config=StepConfig(retry_strategy=RETRY_ONCE, timeout=Duration(1)))


def test_an_attempt_that_runs_over_is_interrupted_and_retried():
    ATTEMPTS.clear()
    started = time.monotonic()
    with DurableTestRunner(slow_then_fast) as runner:
        result = runner.run()
    assert time.monotonic() - started < 3  # not the 5 s the first attempt asked for
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == "attempt 2"
    assert len(ATTEMPTS) == 2
    history = runner.get_execution_history(result.execution_id)["Events"]
    failed = [e for e in history if e["EventType"] == "StepFailed"]
    assert len(failed) == 1
    error = failed[0]["StepFailedDetails"]["Error"]["Payload"]
    assert error["ErrorType"] == "StepTimeoutError"
    assert "ran over its timeout of 1s" in error["ErrorMessage"]


@durable_execution(name="tests.step_timeout.swallows")
def swallows(event: dict, context: DurableContext) -> str:
    def body(step) -> str:
        with contextlib.suppress(Exception):  # a body that catches everything, as some do
            time.sleep(3)
        return "too late"

    try:
        return context.step(
            body, name="stubborn", config=StepConfig(retry_strategy=RetryPresets.none(), timeout=Duration(1))
        )
    except StepError as exc:
        return f"{exc.error_type}: {exc}"


def test_a_body_that_swallows_the_timeout_still_fails_and_its_late_result_is_discarded():
    with DurableTestRunner(swallows) as runner:
        result = runner.run()
    assert json.loads(result.result) == "StepTimeoutError: step 'stubborn' (" + result.operations[0].operation_id[
        :12
    ] + (") attempt 1 ran over its timeout of 1s")
    assert result.get_step("stubborn").result is None


@durable_execution(name="tests.step_timeout.transactional")
def transactional_overrun(event: dict, context: DurableContext) -> None:
    def body(step) -> None:
        User.objects.create(username=f"written-by-attempt-{step.attempt}")
        time.sleep(3)

    context.step(
        body,
        name="persist",
        config=StepConfig(retry_strategy=RetryPresets.none(), timeout=Duration(1), transactional=True),
    )


def test_a_transactional_step_that_runs_over_rolls_its_writes_back():
    with DurableTestRunner(transactional_overrun) as runner:
        result = runner.run()
    assert result.status == "FAILED"
    assert result.error["ErrorType"] == "StepError"
    assert not User.objects.filter(username__startswith="written-by-attempt").exists()


def test_outside_the_main_thread_an_overrun_is_judged_when_the_body_returns():
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            with time_limit(1, "step 'x' attempt 1"):
                time.sleep(1.2)
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(5)
    assert isinstance(outcome[0], StepTimeoutError)


def test_an_alarm_already_set_is_put_back_and_a_fast_body_is_untouched():
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        with time_limit(2, "step 'fast' attempt 1"):
            pass
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 29 < remaining <= 30
        assert not fired
        # An earlier alarm keeps its place: ours is not set, and the body still ends in time.
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with time_limit(2, "step 'fast' attempt 1"):
            time.sleep(0.7)
        assert fired == [1]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_timeout_under_a_second_is_refused():
    @durable_execution(name="tests.step_timeout.zero")
    def handler(event, context: DurableContext):
        context.step(lambda _: 1, config=StepConfig(timeout=Duration(0)))

    with DurableTestRunner(handler) as runner:
        result = runner.run()
    assert result.error["ErrorType"] == "ValidationError"
    assert "at least 1 second" in result.error["ErrorMessage"]
