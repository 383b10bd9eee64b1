import json
import re
from datetime import timedelta

import pytest

from durable import DurableContext, durable_execution
from durable.client import send_callback_failure, send_callback_heartbeat, send_callback_success
from durable.config import CallbackConfig, Duration, WaitForCallbackConfig
from durable.exceptions import (
    CallbackAlreadyCompletedError,
    CallbackExpiredError,
    CallbackNotFoundError,
    ValidationError,
)
from durable.models import Execution, HistoryEvent, Operation
from durable.runtime import run_invocation
from durable.serdes import JsonSerDes
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

submitted: list[str] = []


@pytest.fixture(autouse=True)
def _reset():
    submitted.clear()


@durable_execution(name="tests.callback.approval")
def approval(event: dict, context: DurableContext) -> dict:
    config = WaitForCallbackConfig(
        timeout=Duration(event.get("timeout", 0)), heartbeat_timeout=Duration(event.get("heartbeat", 0))
    )
    try:
        decision = context.wait_for_callback(lambda callback_id, _: submitted.append(callback_id), "approval", config)
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"decision": decision}


def test_callback_success_resumes_with_the_raw_string():
    with DurableTestRunner(approval) as runner:
        execution_id = runner.run_async(json.dumps({}))
        callback_id = runner.wait_for_callback(execution_id, name="approval")
        assert submitted == [callback_id]
        execution = Execution.objects.get(pk=execution_id)
        assert execution.wake_at == execution.timeout_at  # no timer: only the callback (or the timeout) wakes it
        runner.send_callback_success(callback_id, b'{"ok": true}')
        result = runner.wait_for_result(execution_id)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == {"decision": '{"ok": true}'}
    assert submitted == [callback_id]  # the submitter step did not run again on replay
    ops = [(op.operation_type, op.sub_type, op.name, op.status) for op in result.operations]
    assert ops == [
        ("CONTEXT", "WaitForCallback", "approval", "SUCCEEDED"),
        ("CALLBACK", "Callback", "approval create callback id", "SUCCEEDED"),
        ("STEP", "Step", "approval submitter", "SUCCEEDED"),
    ]
    context_id = result.operations[0].operation_id
    assert all(op.parent_id == context_id for op in result.operations[1:])


def test_callback_ids_are_unguessable_url_safe_and_unique():
    ids = set()
    with DurableTestRunner(approval) as runner:
        for _ in range(20):
            execution_id = runner.run_async(json.dumps({}))
            ids.add(runner.wait_for_callback(execution_id))
    assert len(ids) == 20
    for callback_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", callback_id)  # 24 random bytes = 192 bits


def test_callback_failure_surfaces_as_callback_error_with_the_senders_error():
    with DurableTestRunner(approval) as runner:
        execution_id = runner.run_async(json.dumps({}))
        callback_id = runner.wait_for_callback(execution_id)
        send_callback_failure(callback_id, {"ErrorType": "Rejected", "ErrorMessage": "not this time"})
        result = runner.wait_for_result(execution_id)
    # CallbackExternalError, a CallbackError, as the official SDK raises for a sender's failure.
    assert json.loads(result.result) == {"error": "CallbackExternalError", "message": "not this time"}
    callback = result.get_callback("approval create callback id")
    assert callback.status == "FAILED"
    assert callback.error["ErrorType"] == "Rejected"


def test_callback_timeout_surfaces_as_callback_timeout_error():
    with DurableTestRunner(approval) as runner:
        execution_id = runner.run_async(json.dumps({"timeout": 3600}))
        callback_id = runner.wait_for_callback(execution_id)
        assert Execution.objects.get(pk=execution_id).wake_at == runner.clock.current + timedelta(hours=1)
        result = runner.wait_for_result(execution_id)
        with pytest.raises(CallbackExpiredError):  # the time-out committed first
            send_callback_success(callback_id, "too late")
    assert json.loads(result.result)["error"] == "CallbackTimeoutError"
    # The official service's error type and text, recorded on the callback; the handler sees them.
    assert json.loads(result.result)["message"] == "Callback timed out"
    assert result.get_callback("approval create callback id").status == "TIMED_OUT"
    assert result.get_callback("approval create callback id").error["ErrorType"] == "Callback.Timeout"


def test_a_callback_past_its_deadline_cannot_be_completed_and_nothing_changes():
    with DurableTestRunner(approval) as runner:
        execution_id = runner.run_async(json.dumps({"timeout": 60}))
        callback_id = runner.wait_for_callback(execution_id)
        runner.clock.advance_to(runner.clock.current + timedelta(seconds=61))
        with pytest.raises(CallbackExpiredError):
            send_callback_success(callback_id, "late")
        op = Operation.objects.get(callback_id=callback_id)
        assert (op.status, op.result) == ("STARTED", None)


def test_heartbeats_keep_a_callback_alive_until_they_stop():
    with DurableTestRunner(approval) as runner:
        execution_id = runner.run_async(json.dumps({"heartbeat": 60}))
        callback_id = runner.wait_for_callback(execution_id)
        for _ in range(5):  # five minutes of heartbeats every 50 s: still alive
            runner.clock.advance_to(runner.clock.current + timedelta(seconds=50))
            send_callback_heartbeat(callback_id)
            assert runner.step_once(execution_id)
        assert Operation.objects.get(callback_id=callback_id).status == "STARTED"
        result = runner.wait_for_result(execution_id)  # heartbeats stop: it times out
    assert json.loads(result.result)["error"] == "CallbackTimeoutError"
    assert json.loads(result.result)["message"] == "Callback timed out on heartbeat"
    assert result.get_callback("approval create callback id").error["ErrorType"] == "Callback.Heartbeat"
    ended = result.get_callback("approval create callback id").end_timestamp
    started = result.get_callback("approval create callback id").start_timestamp
    assert ended - started == timedelta(seconds=250 + 60)


def test_a_completed_callback_cannot_be_completed_again_and_nothing_changes():
    with DurableTestRunner(approval) as runner:
        execution_id = runner.run_async(json.dumps({}))
        callback_id = runner.wait_for_callback(execution_id)
        send_callback_success(callback_id, "first")
        events_before = HistoryEvent.objects.count()
        with pytest.raises(CallbackAlreadyCompletedError):
            send_callback_success(callback_id, "second")
        with pytest.raises(CallbackAlreadyCompletedError):
            send_callback_failure(callback_id, ValueError("second"))
        assert HistoryEvent.objects.count() == events_before
        result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == {"decision": "first"}


def test_unknown_callback_ids_are_refused():
    with pytest.raises(CallbackNotFoundError):
        send_callback_success("no-such-callback", "x")
    with pytest.raises(CallbackNotFoundError):
        send_callback_heartbeat("no-such-callback")


def test_oversized_and_non_utf8_results_are_refused(settings):
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "MAX_CALLBACK_RESULT_BYTES": 10}
    with DurableTestRunner(approval) as runner:
        execution_id = runner.run_async(json.dumps({}))
        callback_id = runner.wait_for_callback(execution_id)
        with pytest.raises(ValidationError):
            send_callback_success(callback_id, "x" * 11)
        with pytest.raises(UnicodeDecodeError):
            send_callback_success(callback_id, b"\xff\xfe")
        assert Operation.objects.get(callback_id=callback_id).status == "STARTED"


@durable_execution(name="tests.callback.early")
def early(event: dict, context: DurableContext) -> str:
    callback = context.create_callback(name="early", config=CallbackConfig(serdes=JsonSerDes()))
    # The outside world completes the callback before the handler asks for its result,
    # while this very invocation is still running.
    send_callback_success(callback.callback_id, json.dumps({"n": 7}))
    context.step(lambda _: "something else", name="other work")
    return callback.result()


def test_a_callback_completed_before_result_is_asked_is_not_lost():
    with DurableTestRunner(early) as runner:
        result = runner.run()
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == {"n": 7}
    assert runner.invocations == 1  # the result was read on the spot, no suspension


@durable_execution(name="tests.callback.during")
def completed_during_invocation(event: dict, context: DurableContext) -> str:
    callback = context.create_callback(name="late-read")

    def complete_elsewhere(_):
        send_callback_success(callback.callback_id, "from elsewhere")

    context.step(complete_elsewhere, name="complete")
    # Suspend on a long wait: the invocation ends with the callback already completed.
    context.wait(Duration.from_days(30), name="long")
    return callback.result()


def test_a_callback_completed_while_the_invocation_runs_makes_it_due_at_once():
    with DurableTestRunner(completed_during_invocation) as runner:
        execution_id = runner.run_async()
        assert runner.step_once(execution_id) is True
        # The invocation saw the callback pending and suspended for 30 days, but the
        # completion arrived meanwhile: the execution is due now, not in 30 days.
        execution = Execution.objects.get(pk=execution_id)
        assert execution.wake_at <= runner.clock.current + timedelta(days=30)
        result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == "from elsewhere"


def test_completion_after_the_execution_ended_is_refused():
    with DurableTestRunner(approval) as runner:
        execution_id = runner.run_async(json.dumps({}))
        callback_id = runner.wait_for_callback(execution_id)
        from durable.client import stop_execution

        stop_execution(execution_id)
        with pytest.raises(CallbackNotFoundError):
            send_callback_success(callback_id, "x")
    assert run_invocation(execution_id).ran is False
