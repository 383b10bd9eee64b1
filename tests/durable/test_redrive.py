import json

import pytest

from durable import DurableContext, RetryPresets, StepConfig, StepError, WaitForCallbackConfig, durable_execution
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


def build_handled(fixed: bool):
    @durable_execution(name="tests.redrive.handled")
    def handled(event: dict, context: DurableContext) -> dict:
        def charge(_):
            runs.append("charge")
            raise ConnectionError("card declined")

        try:
            context.step(charge, name="charge", config=StepConfig(retry_strategy=RetryPresets.none()))
        except StepError:
            runs.append("handled")  # the handler deals with the declined card itself
        context.step(lambda _: runs.append("notify"), name="notify")
        if not fixed:
            raise RuntimeError("bug after the handled failure")
        return {"ok": True}

    return handled


def test_redrive_reruns_what_ended_the_execution_not_a_failure_the_handler_handled():
    with DurableTestRunner(build_handled(fixed=False)) as runner:
        failed = runner.run()
        assert failed.status == "FAILED"
        assert failed.error["ErrorMessage"] == "bug after the handled failure"
        register(build_handled(fixed=True))
        redrive_execution(failed.execution_id)
        result = runner.wait_for_result(failed.execution_id)
    assert result.status == "SUCCEEDED", result.error
    # The charge was made (and declined) once; the redrive replayed its recorded failure.
    assert runs == ["charge", "handled", "notify", "handled"]
    assert result.get_step("charge").status == "FAILED"
    redriven = next(e for e in get_history(failed.execution_id)["Events"] if e["EventType"] == "ExecutionRedriven")
    assert redriven["ExecutionRedrivenDetails"]["ClearedOperations"] == []


def build_child(fixed: bool):
    @durable_execution(name="tests.redrive.child")
    def child_pipeline(event: dict, context: DurableContext) -> dict:
        def work(child: DurableContext) -> int:
            a = child.step(lambda _: runs.append("a") or 1, name="a")

            def b(_):
                runs.append("b")
                if not fixed:
                    raise ValueError("bug in b")
                return 2

            return a + child.step(b, name="b", config=StepConfig(retry_strategy=RetryPresets.none()))

        total = context.run_in_child_context(work, name="work")
        return {"total": total}

    return child_pipeline


def test_redrive_of_a_failed_child_context_keeps_its_completed_steps():
    with DurableTestRunner(build_child(fixed=False)) as runner:
        failed = runner.run()
        assert failed.status == "FAILED"
        register(build_child(fixed=True))
        redrive_execution(failed.execution_id)
        result = runner.wait_for_result(failed.execution_id)
    assert result.status == "SUCCEEDED", result.error
    assert json.loads(result.result) == {"total": 3}
    assert runs == ["a", "b", "b"]  # a succeeded before the failure: kept, never run again
    assert result.get_context("work").status == "SUCCEEDED"


def build_waits(fixed: bool):
    @durable_execution(name="tests.redrive.wait_for_callback")
    def waits(event: dict, context: DurableContext) -> dict:
        value = context.wait_for_callback(
            lambda callback_id, _: runs.append(callback_id),
            name="approval",
            config=WaitForCallbackConfig(timeout=Duration(60 if not fixed else 3600)),
        )
        return {"value": value}

    return waits


def test_redrive_of_a_timed_out_wait_for_callback_hands_out_a_new_callback():
    # A new callback is useless unless its id reaches someone: the submitter runs again with it.
    with DurableTestRunner(build_waits(fixed=False)) as runner:
        failed = runner.run()
        assert failed.status == "FAILED"
        assert failed.error["ErrorType"] == "CallbackTimeoutError"
        register(build_waits(fixed=True))
        redrive_execution(failed.execution_id)
        callback_id = runner.wait_for_callback(failed.execution_id)
        assert len(runs) == 2
        assert runs[-1] == callback_id
        assert runs[0] != callback_id
        runner.send_callback_success(callback_id, "yes")
        result = runner.wait_for_result(failed.execution_id)
    assert json.loads(result.result) == {"value": "yes"}


def build_cleanup_then_reraise(fixed: bool):
    @durable_execution(name="tests.redrive.cleanup")
    def cleanup(event: dict, context: DurableContext) -> dict:
        try:
            value = context.step(
                lambda _: runs.append("work") or (1 if fixed else 1 // 0),
                name="work",
                config=StepConfig(retry_strategy=RetryPresets.none()),
            )
        except StepError:
            # Work done because of the failure (mark a row failed, say), then the failure goes on.
            context.step(lambda _: runs.append("mark failed"), name="mark failed")
            raise
        context.wait(Duration(1), name="after")
        return {"value": value}

    return cleanup


def test_a_redrive_forgets_what_the_handler_did_because_of_the_failure():
    # Operations recorded after the failed one, because of it, belong to a branch the fixed code
    # may not take: the redrive clears them, so the new run does not meet them as a mismatch.
    with DurableTestRunner(build_cleanup_then_reraise(fixed=False)) as runner:
        failed = runner.run("{}")
        assert failed.status == "FAILED"
        assert runs == ["work", "mark failed"]
        register(build_cleanup_then_reraise(fixed=True))
        redrive_execution(failed.execution_id)
        result = runner.wait_for_result(failed.execution_id)
    assert result.status == "SUCCEEDED", result.error
    assert json.loads(result.result) == {"value": 1}
    assert runs == ["work", "mark failed", "work"]
    assert [op.name for op in result.operations] == ["work", "after"]


def test_a_redrive_that_fails_again_runs_the_failure_handling_again():
    with DurableTestRunner(build_cleanup_then_reraise(fixed=False)) as runner:
        failed = runner.run("{}")
        redrive_execution(failed.execution_id)
        again = runner.wait_for_result(failed.execution_id)
    assert again.status == "FAILED"
    assert runs == ["work", "mark failed", "work", "mark failed"]
