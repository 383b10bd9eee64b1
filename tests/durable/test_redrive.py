import json

import pytest

from durable import DurableContext, RetryPresets, StepConfig, durable_execution
from durable.client import get_history, redrive_execution
from durable.config import Duration
from durable.exceptions import ExecutionNotRunningError
from durable.execution import register
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

runs: list[str] = []


@pytest.fixture(autouse=True)
def _reset():
    runs.clear()


def build(fixed: bool):
    @durable_execution(name="tests.redrive.pipeline")
    def pipeline(event: dict, context: DurableContext) -> dict:
        fetched = context.step(lambda _: runs.append("fetch") or event["n"], name="fetch")
        context.wait(Duration(5), name="settle")

        def transform(_):
            runs.append("transform")
            if not fixed:
                raise ZeroDivisionError("bug in transform")
            return fetched * 2

        doubled = context.step(transform, name="transform", config=StepConfig(retry_strategy=RetryPresets.none()))
        return {"result": doubled}

    return pipeline


def test_redrive_after_a_code_fix_keeps_completed_work_and_reruns_the_failure():
    with DurableTestRunner(build(fixed=False)) as runner:
        failed = runner.run(json.dumps({"n": 21}))
        assert failed.status == "FAILED"
        assert failed.error["ErrorMessage"] == "bug in transform"
        register(build(fixed=True))  # deploy the fix
        redriven = redrive_execution(failed.execution_id)
        assert redriven.status == "RUNNING"
        result = runner.wait_for_result(failed.execution_id)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == {"result": 42}
    # fetch ran once, before the failure; transform ran once broken and once fixed.
    assert runs == ["fetch", "transform", "transform"]
    events = [e["EventType"] for e in get_history(failed.execution_id)["Events"]]
    assert events.count("ExecutionFailed") == 1
    assert "ExecutionRedriven" in events
    assert events[-1] == "ExecutionSucceeded"
    redriven_event = next(
        e for e in get_history(failed.execution_id)["Events"] if e["EventType"] == "ExecutionRedriven"
    )
    assert redriven_event["ExecutionRedrivenDetails"]["PreviousError"]["ErrorMessage"] == "bug in transform"


def test_only_failed_executions_redrive():
    with DurableTestRunner(build(fixed=True)) as runner:
        done = runner.run(json.dumps({"n": 1}))
        with pytest.raises(ExecutionNotRunningError, match="only FAILED"):
            redrive_execution(done.execution_id)
