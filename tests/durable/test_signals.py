"""`execution_status_changed`: sent after the commit that changed the status, whatever changed it."""

import json
import threading
from datetime import timedelta

import pytest
from django.db import connections

from durable import DurableContext, RetryPresets, StepConfig, durable_execution
from durable.client import redrive_execution, start_execution, stop_execution
from durable.config import Duration
from durable.models import Execution
from durable.signals import execution_status_changed
from durable.sweep import sweep
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def received():
    seen: list[dict] = []

    def receiver(sender, **kwargs):
        # Read from another connection: the change must already be committed.
        committed: list[str] = []

        def read():
            try:
                committed.append(Execution.objects.get(pk=kwargs["execution_id"]).status)
            finally:
                connections.close_all()

        reader = threading.Thread(target=read)
        reader.start()
        reader.join()
        seen.append({**kwargs, "committed": committed[0]})

    execution_status_changed.connect(receiver)
    yield seen
    execution_status_changed.disconnect(receiver)


@durable_execution(name="tests.signals.outcome")
def outcome(event: dict, context: DurableContext) -> str:
    context.step(lambda _: 1, name="one")
    if event.get("wait"):
        context.wait(Duration(event["wait"]), name="wait")

    def maybe_fail(_):
        if event.get("fail"):
            raise ValueError("broken")
        return 2

    context.step(maybe_fail, name="maybe fail", config=StepConfig(retry_strategy=RetryPresets.none()))
    return "done"


def _only(seen: list[dict]) -> dict:
    """The one change besides the start (sent too, with previous_status "": test_events_*)."""
    changes = [s for s in seen if s["previous_status"]]
    assert len(changes) == 1, seen
    return changes[0]


def test_sent_after_commit_when_an_execution_succeeds(received):
    with DurableTestRunner(outcome) as runner:
        result = runner.run(json.dumps({}))
    sent = _only(received)
    assert sent["execution_id"] == result.execution_id
    assert (sent["status"], sent["previous_status"], sent["committed"]) == ("SUCCEEDED", "RUNNING", "SUCCEEDED")
    assert sent["function_name"] == "tests.signals.outcome"
    assert sent["error"] is None


def test_sent_when_it_fails_and_again_when_it_is_redriven(received):
    with DurableTestRunner(outcome) as runner:
        result = runner.run(json.dumps({"fail": True}))
        failed = _only(received)
        assert (failed["status"], failed["committed"]) == ("FAILED", "FAILED")
        assert failed["error"]["ErrorType"] == "StepError"
        received.clear()
        redrive_execution(result.execution_id)
    redriven = _only(received)
    assert (redriven["status"], redriven["previous_status"], redriven["committed"]) == ("RUNNING", "FAILED", "RUNNING")


def test_sent_when_it_is_stopped(received):
    with DurableTestRunner(outcome) as runner:
        execution_id = runner.run_async(json.dumps({"wait": 60}))
        runner.step_once(execution_id)
        stop_execution(execution_id)
    sent = _only(received)
    assert (sent["status"], sent["committed"]) == ("STOPPED", "STOPPED")


@pytest.mark.parametrize("by", ["sweep", "invocation"])
def test_sent_when_it_times_out(received, by):
    with DurableTestRunner(outcome) as runner:
        execution = start_execution(outcome, {"wait": 600}, execution_timeout=60)
        execution_id = str(execution.pk)
        runner.step_once(execution_id)
        runner.clock.advance_to(runner.clock.current + timedelta(seconds=61))
        if by == "sweep":
            sweep()
        else:
            runner.step_once(execution_id)
    sent = _only(received)
    assert (sent["status"], sent["committed"]) == ("TIMED_OUT", "TIMED_OUT")
    assert sent["execution_name"] == execution.execution_name


def test_a_failing_receiver_changes_nothing(received):
    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    execution_status_changed.connect(broken)
    try:
        with DurableTestRunner(outcome) as runner:
            result = runner.run(json.dumps({}))
    finally:
        execution_status_changed.disconnect(broken)
    assert result.status == "SUCCEEDED"
    assert _only(received)["status"] == "SUCCEEDED"
