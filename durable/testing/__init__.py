"""Test runners over the real engine: same models, same run_invocation.

`DurableFunctionTestRunner` (in `durable.testing.runner`) is the official testing package's
runner: tests written for it pass after changing their import prefix, and it moves executions in
the background. `DurableTestRunner`, here, is the engine's own: it moves an execution only inside
its calls (`step_once`, `wait_for_result`), on a fake clock the test can also move by hand, and
returns the journal's rows as they are; the engine's and the product's tests use it to control
exactly when each invocation runs. Both skip time, so a 365-day wait takes milliseconds.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Any

from durable import client, dispatch, sinks
from durable import clock as engine_clock
from durable.client import get_execution, get_history, start_execution
from durable.execution import DurableFunction, register
from durable.models import Execution, ExecutionStatus, Operation
from durable.runtime import run_invocation
from durable.store import children


class RunStatus(enum.StrEnum):
    """The execution's status as the official runner reports it; compares equal to the string."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"


@dataclass
class TestOperation:
    """An operation of the journal as a test sees it."""

    operation_id: str
    operation_type: str
    status: str
    name: str | None
    sub_type: str
    parent_id: str | None
    attempt: int
    result: str | None
    error: dict[str, Any] | None
    start_timestamp: datetime | None
    end_timestamp: datetime | None
    next_attempt_timestamp: datetime | None = None
    scheduled_end_timestamp: datetime | None = None
    callback_id: str | None = None
    child_operations: list[TestOperation] = field(default_factory=list)


@dataclass
class DurableTestResult:
    """`status` is the execution's status; `result` the handler's return value as JSON text."""

    status: RunStatus
    operations: list[TestOperation]
    result: str | None = None
    error: dict[str, Any] | None = None
    execution_id: str = ""

    @classmethod
    def create(cls, execution: Execution) -> DurableTestResult:
        rows = execution.operations.order_by("id")
        ops = [
            TestOperation(
                operation_id=o.operation_id,
                operation_type=o.type,
                status=o.status,
                name=o.name,
                sub_type=o.sub_type,
                parent_id=o.parent_id,
                attempt=o.attempt,
                result=o.result,
                error=o.error,
                start_timestamp=o.started_at,
                end_timestamp=o.ended_at,
                next_attempt_timestamp=o.next_attempt_at,
                scheduled_end_timestamp=o.wait_until,
                callback_id=o.callback_id,
            )
            for o in rows
        ]
        by_id = {op.operation_id: op for op in ops}
        for op in ops:
            if op.parent_id in by_id:
                by_id[op.parent_id].child_operations.append(op)
        return cls(RunStatus(execution.status), ops, execution.result, execution.error, str(execution.pk))

    def get_all_operations(self) -> list[TestOperation]:
        return list(self.operations)

    def get_operation_by_name(self, name: str) -> TestOperation:
        for op in self.operations:
            if op.name == name:
                return op
        raise KeyError(f"no operation named {name!r}")

    def _typed(self, name: str, operation_type: str) -> TestOperation:
        op = self.get_operation_by_name(name)
        if op.operation_type != operation_type:
            raise TypeError(f"operation {name!r} is a {op.operation_type}, not a {operation_type}")
        return op

    def get_step(self, name: str) -> TestOperation:
        return self._typed(name, "STEP")

    def get_wait(self, name: str) -> TestOperation:
        return self._typed(name, "WAIT")

    def get_context(self, name: str) -> TestOperation:
        return self._typed(name, "CONTEXT")

    def get_callback(self, name: str) -> TestOperation:
        return self._typed(name, "CALLBACK")

    @property
    def result_value(self) -> Any:
        """The handler's return value, decoded."""
        return None if self.result is None else json.loads(self.result)


class DurableTestRunner:
    """Runs a durable function to completion, skipping time. Needs database access (pytest-django)."""

    __test__ = False  # not a pytest test class

    def __init__(self, handler: DurableFunction, *, skip_time: bool = True, start: datetime | None = None) -> None:
        self.handler = register(handler)
        self.skip_time = skip_time
        self.clock = engine_clock.FakeClock(start) if skip_time else None
        self._clock_scope: Any = None
        self._dispatch_scope: Any = None
        self.invocations = 0

    def __enter__(self) -> DurableTestRunner:
        # The runner drives invocations itself: no wake-up goes to a queue (or needs a Redis).
        self._dispatch_scope = dispatch.paused()
        self._dispatch_scope.__enter__()
        if self.clock is not None:
            self._clock_scope = engine_clock.use_clock(self.clock)
            self._clock_scope.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._clock_scope is not None:
            self._clock_scope.__exit__(None, None, None)
            self._clock_scope = None
        if self._dispatch_scope is not None:
            self._dispatch_scope.__exit__(None, None, None)
            self._dispatch_scope = None

    def register_durable_function(self, function_name: str, handler: DurableFunction, **_: Any) -> DurableTestRunner:
        """Register `handler` under `function_name`, as `context.invoke` names it."""
        register(replace(handler, name=function_name))
        return self

    def run(
        self,
        input: str | None = None,  # noqa: A002 - the official runner's name
        execution_timeout: int | None = None,
        timeout: int = 60,
        function_name: str | None = None,
        execution_name: str | None = None,
    ) -> DurableTestResult:
        """Start with `input` (JSON text) and drive invocations until the execution ends."""
        execution_id = self.run_async(
            input, execution_timeout, function_name=function_name, execution_name=execution_name
        )
        return self.wait_for_result(execution_id, timeout=timeout)

    def run_async(
        self,
        input: str | None = None,  # noqa: A002
        execution_timeout: int | None = None,
        timeout: int = 60,
        function_name: str | None = None,
        execution_name: str | None = None,
    ) -> str:
        payload = json.loads(input) if input is not None else None
        execution = start_execution(
            function_name or self.handler,
            payload,
            execution_name=execution_name,
            execution_timeout=execution_timeout,
        )
        return str(execution.pk)

    def step_once(self, execution_id: str, *, deadline: float | None = None) -> bool:
        """Run invocations while the execution (or one it invoked) is due now; return True if it
        is still RUNNING.

        Raises TimeoutError once `deadline` (a `time.monotonic()` value) has passed.
        """
        while True:
            execution = get_execution(execution_id)
            if execution.status != ExecutionStatus.RUNNING:
                return False
            now = engine_clock.now()
            due = [pk for pk, wake_at in self._family(execution) if wake_at is not None and wake_at <= now]
            if not due:
                return True
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_id} was still due after the runner's timeout")
            for pk in due:
                run_invocation(pk, owner="test-runner")
                self.invocations += 1
            sinks.flush_marks()  # as a worker does between jobs: the deliveries recorded

    @staticmethod
    def _family(execution: Execution) -> list[tuple[str, datetime | None]]:
        """The execution and the RUNNING executions it invoked (context.invoke), with their wake-ups."""
        return [(str(execution.pk), execution.wake_at), *children.running_descendants(str(execution.pk))]

    def _next_wake_at(self, execution_id: str) -> datetime | None:
        times = [t for _, t in self._family(get_execution(execution_id)) if t is not None]
        return min(times) if times else None

    def wait_for_result(self, execution_arn: str, timeout: int = 60) -> DurableTestResult:
        """Drive the execution until it ends, jumping the clock to each wake-up.

        Raises TimeoutError if it is still waiting (e.g. on a callback) after `timeout` real seconds.
        """
        deadline = time.monotonic() + timeout
        while self.step_once(execution_arn, deadline=deadline):
            wake_at = self._next_wake_at(execution_arn)
            if wake_at is None:
                raise TimeoutError(f"execution {execution_arn} is waiting for a callback")
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} did not end within {timeout}s")
            if self.clock is not None:
                self.clock.advance_to(wake_at)
            else:
                time.sleep(max(0.0, min(deadline - time.monotonic(), (wake_at - engine_clock.now()).total_seconds())))
        return DurableTestResult.create(get_execution(execution_arn))

    def send_callback_success(self, callback_id: str, result: bytes | str | None = None) -> None:
        client.send_callback_success(callback_id, result)

    def send_callback_failure(self, callback_id: str, error: Any = None) -> None:
        client.send_callback_failure(callback_id, error)

    def send_callback_heartbeat(self, callback_id: str) -> None:
        client.send_callback_heartbeat(callback_id)

    def wait_for_callback(self, execution_arn: str, name: str | None = None, timeout: int = 60) -> str:
        """Drive the execution until a callback (named `name`, if given) is pending; return its id.

        Raises TimeoutError if the execution ends or stops waiting first.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.step_once(execution_arn, deadline=deadline) and not self._pending_callback(execution_arn, name):
                raise TimeoutError(f"execution {execution_arn} ended without a callback named {name!r}")
            found = self._pending_callback(execution_arn, name)
            if found:
                return found
            wake_at = self._next_wake_at(execution_arn)
            if wake_at is None or time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} has no pending callback named {name!r}")
            if self.clock is not None:
                self.clock.advance_to(wake_at)

    def _pending_callback(self, execution_id: str, name: str | None) -> str | None:
        pending = Operation.objects.filter(execution_id=execution_id, type="CALLBACK", status="STARTED")
        if name is not None:
            pending = pending.filter(name__in=[name, f"{name} create callback id"])
        found: str | None = pending.order_by("id").values_list("callback_id", flat=True).first()
        return found

    def get_execution_history(self, execution_arn: str, include_execution_data: bool = False) -> dict[str, Any]:
        return get_history(execution_arn, include_execution_data=include_execution_data)


# The official testing package's names (its package exports these), so ported tests only change
# their import prefix. Imported last: the runner's module imports nothing from this one.
from durable import __version__  # noqa: E402
from durable.testing.runner import (  # noqa: E402
    DurableChildContextTestRunner,
    DurableFunctionCloudTestRunner,
    DurableFunctionTestResult,
    DurableFunctionTestRunner,
    WebRunner,
    WebRunnerConfig,
)

__all__ = [
    "DurableChildContextTestRunner",
    "DurableFunctionCloudTestRunner",
    "DurableFunctionTestResult",
    "DurableFunctionTestRunner",
    "DurableTestResult",
    "DurableTestRunner",
    "TestOperation",
    "WebRunner",
    "WebRunnerConfig",
    "__version__",
]
