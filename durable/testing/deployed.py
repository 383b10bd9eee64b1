"""`DurableFunctionCloudTestRunner`: the same tests against the deployed engine, not an in-process one.

The official class runs a test against a function deployed on Lambda. Here the deployment is the
project itself: the execution is started through the client by the function's registered name and
run by the real workers (through the configured dispatcher, Redis and RQ), and the runner only
watches the database. The test needs the workers running and a database they share with it (a
transactional test). It offers the local runner's calls, so one test can target both.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Self

from durable import client
from durable.errors import ErrorObject
from durable.models import ExecutionStatus
from durable.models import Operation as OperationRow
from durable.testing.operations import DurableFunctionTestResult
from durable.testing.views import RecordView


class DurableFunctionCloudTestRunner:
    """Runs the durable function registered as `function_name` on the project's workers.

    `region` and `lambda_endpoint` are accepted and have no effect (the database is the service).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        function_name: str,
        region: str = "us-west-2",
        lambda_endpoint: str | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.function_name = function_name
        self.region = region
        self.lambda_endpoint = lambda_endpoint
        self.poll_interval = poll_interval

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def run(self, input: Any = None, timeout: int = 60) -> DurableFunctionTestResult:  # noqa: A002
        """Start the function with `input` (any JSON value) and wait until it ends.

        Raises UnknownFunctionError, ValidationError, or TimeoutError after `timeout` seconds.
        """
        return self.wait_for_result(self.run_async(input, timeout), timeout)

    def run_async(self, input: Any = None, timeout: int = 60) -> str:  # noqa: A002
        """Start the function with `input` and return the execution's id; the workers run it."""
        return str(client.start_execution(self.function_name, input).pk)

    def wait_for_result(self, execution_arn: str, timeout: int = 60) -> DurableFunctionTestResult:
        """Poll the execution until it ends. Raises TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:  # bounded by the deadline
            execution = client.get_execution(execution_arn)
            if execution.status != ExecutionStatus.RUNNING:
                return DurableFunctionTestResult.create(execution)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Execution did not complete within {timeout}s (last status: RUNNING)")
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    def wait_for_callback(self, execution_arn: str, name: str | None = None, timeout: int = 60) -> str:
        """The id of the execution's callback named `name` (or its latest one) once the invocation
        that created it has ended (no lease held). Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # bounded by the deadline
            callbacks = OperationRow.objects.filter(execution_id=execution_arn, type="CALLBACK")
            if name is not None:
                callbacks = callbacks.filter(name=name)
            callback_id = callbacks.order_by("-id" if name is None else "id").values_list("callback_id", flat=True)
            found = callback_id.first()
            if found and client.get_execution(execution_arn).lease_token is None:
                return found
            time.sleep(self.poll_interval)
        raise TimeoutError(f"Callback did not become available within {timeout}s.")

    def send_callback_success(self, callback_id: str, result: bytes | None = None) -> None:
        client.send_callback_success(callback_id, result)

    def send_callback_failure(self, callback_id: str, error: ErrorObject | Any | None = None) -> None:
        client.send_callback_failure(callback_id, error)

    def send_callback_heartbeat(self, callback_id: str) -> None:
        client.send_callback_heartbeat(callback_id)

    def get_execution_history(self, execution_arn: str, include_execution_data: bool = False) -> RecordView:
        return RecordView(client.get_history(execution_arn, include_execution_data=include_execution_data))

    def pause_execution(self, execution_arn: str, timeout: float = 60) -> None:
        """Not offered against a deployment (as on the official runner): raises NotImplementedError."""
        raise NotImplementedError("pausing is offered by DurableFunctionTestRunner only")

    def resume_execution(self, execution_arn: str) -> None:
        """Not offered against a deployment: raises NotImplementedError."""
        raise NotImplementedError("resuming is offered by DurableFunctionTestRunner only")
