"""The callbacks API completes real callbacks of real executions, and refuses what it must."""

import json
from datetime import timedelta

import pytest

from durable import DurableContext, Duration, WaitForCallbackConfig, durable_execution
from durable.models import Execution, HistoryEvent, Operation
from durable.testing import DurableTestRunner
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


@durable_execution(name="tests.api.waits_for_callback")
def waits_for_callback(event: dict, context: DurableContext) -> dict:
    config = WaitForCallbackConfig(
        timeout=Duration(event.get("timeout", 0)), heartbeat_timeout=Duration(event.get("heartbeat", 0))
    )
    try:
        value = context.wait_for_callback(lambda callback_id, _: None, "outside", config)
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"value": value}


@pytest.fixture
def runner():
    with DurableTestRunner(waits_for_callback) as runner:
        yield runner


def waiting(runner, **event):
    execution_id = runner.run_async(json.dumps(event))
    return execution_id, runner.wait_for_callback(execution_id, name="outside")


def untouched(callback_id):
    op = Operation.objects.get(callback_id=callback_id)
    return (op.status, op.result, op.error) == ("STARTED", None, None)


def test_succeed_resumes_the_execution_with_the_result(api, runner):
    execution_id, callback_id = waiting(runner)
    response = api.post(f"/api/callbacks/{callback_id}/succeed", {"result": "approved by email"})
    assert response.status_code == 200, response.content
    assert response.json() == {"callback_id": callback_id, "status": "SUCCEEDED"}
    result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == {"value": "approved by email"}


def test_a_json_result_is_delivered_as_its_json_text(api, runner):
    execution_id, callback_id = waiting(runner)
    api.post(f"/api/callbacks/{callback_id}/succeed", {"result": {"decision": "yes", "n": 2}})
    value = json.loads(runner.wait_for_result(execution_id).result)["value"]
    assert json.loads(value) == {"decision": "yes", "n": 2}


def test_fail_raises_a_callback_error_in_the_handler(api, runner):
    execution_id, callback_id = waiting(runner)
    body = {"error": {"type": "Declined", "message": "the customer said no", "data": {"why": "price"}}}
    response = api.post(f"/api/callbacks/{callback_id}/fail", body)
    assert response.json() == {"callback_id": callback_id, "status": "FAILED"}
    result = json.loads(runner.wait_for_result(execution_id).result)
    assert result == {"error": "CallbackExternalError", "message": "the customer said no"}
    op = Operation.objects.get(callback_id=callback_id)
    assert op.error["ErrorType"] == "Declined"
    assert json.loads(op.error["ErrorData"]) == {"why": "price"}


def test_heartbeat_pushes_the_deadline(api, runner):
    _execution_id, callback_id = waiting(runner, heartbeat=60)
    before = Operation.objects.get(callback_id=callback_id).heartbeat_deadline
    runner.clock.advance_to(runner.clock.current + timedelta(seconds=50))
    response = api.post(f"/api/callbacks/{callback_id}/heartbeat")
    assert response.json() == {"callback_id": callback_id, "status": "STARTED"}
    after = Operation.objects.get(callback_id=callback_id).heartbeat_deadline
    assert after - before == timedelta(seconds=50)
    assert untouched(callback_id)


def test_completing_twice_is_a_conflict_and_changes_nothing(api, runner):
    _execution_id, callback_id = waiting(runner)
    api.post(f"/api/callbacks/{callback_id}/succeed", {"result": "first"})
    events = HistoryEvent.objects.count()
    assert_error(
        api.post(f"/api/callbacks/{callback_id}/succeed", {"result": "second"}), 409, "callback_already_completed"
    )
    assert_error(api.post(f"/api/callbacks/{callback_id}/fail", {}), 409, "callback_already_completed")
    assert Operation.objects.get(callback_id=callback_id).result == "first"
    assert HistoryEvent.objects.count() == events


def test_completing_after_the_timeout_is_gone(api, runner):
    execution_id, callback_id = waiting(runner, timeout=60)
    runner.clock.advance_to(runner.clock.current + timedelta(seconds=61))
    assert_error(api.post(f"/api/callbacks/{callback_id}/succeed", {"result": "late"}), 410, "callback_expired")
    assert untouched(callback_id)
    # Once the engine has timed it out, the answer is the same.
    result = json.loads(runner.wait_for_result(execution_id).result)
    assert result["error"] == "CallbackTimeoutError"
    assert_error(api.post(f"/api/callbacks/{callback_id}/succeed", {"result": "late"}), 410, "callback_expired")
    assert Operation.objects.get(callback_id=callback_id).status == "TIMED_OUT"


def test_unknown_callbacks_are_404(api):
    for action in ("succeed", "fail", "heartbeat"):
        body = None if action == "heartbeat" else {}
        assert_error(api.post(f"/api/callbacks/no-such-callback/{action}", body), 404, "callback_not_found")


def test_bad_bodies_change_nothing(api, runner, settings):
    execution_id, callback_id = waiting(runner)
    url = f"/api/callbacks/{callback_id}/succeed"
    assert_error(api.post(url, raw="{oops"), 400, "invalid_json")
    assert_error(api.post(url, {"result": "x", "extra": 1}), 422, "validation_error")
    assert_error(api.post(f"/api/callbacks/{callback_id}/fail", {"error": "not an object"}), 422, "validation_error")
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "MAX_CALLBACK_RESULT_BYTES": 100}
    assert_error(api.post(url, {"result": "x" * 101}), 413, "payload_too_large")
    assert untouched(callback_id)
    assert Execution.objects.get(pk=execution_id).status == "RUNNING"


def test_callbacks_need_their_scope(issue, make_api, runner):
    _execution_id, callback_id = waiting(runner)
    reader = make_api(issue("documents:submit", "executions:read").plaintext)
    error = assert_error(reader.post(f"/api/callbacks/{callback_id}/succeed", {"result": "x"}), 403, "missing_scope")
    assert "callbacks:complete" in error["message"]
    assert untouched(callback_id)
