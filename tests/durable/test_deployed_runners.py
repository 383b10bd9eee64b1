"""The runners that test against the deployment, with real processes: redis-server and workers.

`DurableFunctionCloudTestRunner` starts a registered function by name and the workers run it;
`WebRunner` serves the service's HTTP API, through which a test outside Python would start an
execution, find its callback in the history, complete it and read the result.
"""

import json
import time
import urllib.error
import urllib.request

import pytest

from durable.execution import InvocationStatus
from durable.lambda_service import OperationStatus
from durable.testing import DurableFunctionCloudTestRunner, WebRunner, WebRunnerConfig
from durable.testing.web import WebServiceConfig
from tests import workflows

pytestmark = [pytest.mark.processes, pytest.mark.timeout(90)]


def test_the_cloud_runner_runs_the_test_on_the_workers(workers):
    workers(1)
    runner = DurableFunctionCloudTestRunner(workflows.approval.name, poll_interval=0.1)
    with runner:
        arn = runner.run_async({"timeout": 600})
        callback_id = runner.wait_for_callback(arn, name="approval create callback id", timeout=30)
        runner.send_callback_success(callback_id, b"yes")
        result = runner.wait_for_result(arn, timeout=30)
    with DurableFunctionCloudTestRunner(workflows.timed.name, poll_interval=0.1) as timer_runner:
        timed = timer_runner.run({"seconds": 1}, timeout=30)
    assert result.status is InvocationStatus.SUCCEEDED
    assert json.loads(result.result)["value"] == "yes"
    callback = result.get_context("approval").get_callback("approval create callback id")
    assert (callback.status, callback.callback_id) == (OperationStatus.SUCCEEDED, callback_id)
    assert timed.status is InvocationStatus.SUCCEEDED
    assert timed.get_wait("timer").status is OperationStatus.SUCCEEDED
    with pytest.raises(NotImplementedError):
        runner.pause_execution(arn)


def call(method: str, url: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def poll(check, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("not reached in time")


def test_the_web_runner_serves_the_service_api(workers):
    workers(1)
    with WebRunner(WebRunnerConfig(WebServiceConfig(host="127.0.0.1", port=0))) as web:
        root = f"http://127.0.0.1:{web.port}"
        api = f"{root}/2025-12-01"
        assert call("GET", f"{root}/health") == (200, {"status": "healthy"})
        start = {"FunctionName": workflows.approval.name, "Input": json.dumps({"timeout": 600})}
        status, started = call("POST", f"{root}/start-durable-execution", json.dumps(start).encode())
        assert status == 201
        arn = started["ExecutionArn"]

        def callback_id():
            _, history = call("GET", f"{api}/durable-executions/{arn}/history")
            for event in history["Events"]:
                if event["EventType"] == "CallbackStarted":
                    return event["CallbackStartedDetails"]["CallbackId"]
            return None

        found = poll(callback_id, 30)
        assert call("POST", f"{api}/durable-execution-callbacks/{found}/succeed", b"approved") == (200, {})
        execution = poll(
            lambda: (lambda e: e if e["Status"] != "RUNNING" else None)(
                call("GET", f"{api}/durable-executions/{arn}")[1]
            ),
            30,
        )
        assert execution["Status"] == "SUCCEEDED"
        assert json.loads(execution["Result"])["value"] == "approved"
        # Errors come back as the service's, and change nothing.
        status, error = call("POST", f"{api}/durable-execution-callbacks/{found}/succeed", b"again")
        assert (status, error["Type"]) == (400, "InvalidParameterValueException")
        status, error = call("GET", f"{api}/durable-executions/00000000-0000-4000-8000-000000000000")
        assert (status, error["Type"]) == (404, "ResourceNotFoundException")
        status, error = call("POST", f"{root}/start-durable-execution", b"{oops")
        assert (status, error["Type"]) == (400, "InvalidParameterValueException")
        status, error = call("POST", f"{root}/start-durable-execution", b"{}")
        assert (status, error["Type"]) == (400, "InvalidParameterValueException")
        assert call("GET", f"{root}/nowhere")[0] == 404
    with pytest.raises(RuntimeError, match="not started"):
        _ = web.port
