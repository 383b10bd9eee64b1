import json
import time
from datetime import timedelta

import pytest

from durable import DurableContext, durable_execution
from durable.config import Duration
from durable.exceptions import ValidationError
from durable.execution import validate_timeout
from durable.models import Execution
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db


@durable_execution(name="tests.wait.year")
def year_handler(event: dict, context: DurableContext) -> str:
    context.wait(Duration.from_days(365), name="a-year")
    return "awake"


def test_a_365_day_wait_passes_in_milliseconds_and_never_resumes_early():
    started = time.monotonic()
    with DurableTestRunner(year_handler) as runner:
        begin = runner.clock.current
        execution_id = runner.run_async()
        assert runner.step_once(execution_id)
        execution = Execution.objects.get(pk=execution_id)
        assert execution.wake_at == begin + timedelta(days=365)
        # One second early, the invocation finds the wait not due and suspends again.
        runner.clock.advance_to(execution.wake_at - timedelta(seconds=1))
        Execution.objects.filter(pk=execution_id).update(wake_at=runner.clock.current)
        assert runner.step_once(execution_id)
        assert Execution.objects.get(pk=execution_id).wake_at == begin + timedelta(days=365)
        result = runner.wait_for_result(execution_id)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == "awake"
    wait = result.get_wait("a-year")
    assert wait.status == "SUCCEEDED"
    assert wait.end_timestamp - wait.start_timestamp == timedelta(days=365)
    assert time.monotonic() - started < 5


@durable_execution(name="tests.wait.too_short")
def zero_wait_handler(event: dict, context: DurableContext) -> None:
    context.wait(Duration(0))


def test_a_wait_shorter_than_a_second_is_refused():
    with DurableTestRunner(zero_wait_handler) as runner:
        result = runner.run()
    assert result.status == "FAILED"
    assert result.error["ErrorType"] == "ValidationError"
    assert "at least 1 second" in result.error["ErrorMessage"]


def test_negative_durations_are_refused():
    with pytest.raises(ValueError, match="negative"):
        Duration(-1)
    with pytest.raises(ValidationError):
        validate_timeout(Duration.from_days(367))
