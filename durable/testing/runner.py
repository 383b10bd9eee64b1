"""`DurableFunctionTestRunner`: the official testing package's runner, over the real engine.

A test written for the official runner passes here after changing its import prefix
(`aws_durable_execution_sdk_python_testing` to `durable.testing`). Like the official one, the
runner moves executions forward in the background from `run_async` on: a test can poll the
history for a callback id, complete the callback, and wait for the result. With `skip_time` the
engine's clock jumps over waits and retry delays as soon as nothing else is due, while execution
timeouts and callback deadlines keep counting real time (the official runner does not skip them
either), so a 1-second callback timeout still times out in about a second.

Tests hold their data in a transaction of the test's database connection, so the background
thread does not open its own: it borrows the connections of the thread that made the runner (as
Django's live server does) and takes the runner's lock for every use; the runner's methods take
it too. Test code that queries the ORM while an execution is still moving should hold
`runner.lock`, or read after `wait_for_result`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from django.db import connections
from django.db.models import F, Min, Q

from durable import client, dispatch, sinks
from durable import clock as engine_clock
from durable.errors import ErrorObject
from durable.execution import DurableFunction, durable_execution, register, validate_timeout
from durable.models import Execution, ExecutionStatus
from durable.models import Operation as OperationRow
from durable.runtime import run_invocation
from durable.testing.deployed import DurableFunctionCloudTestRunner
from durable.testing.operations import (
    OPERATION_FACTORIES,
    CallbackOperation,
    ContextOperation,
    DurableFunctionsTestError,
    DurableFunctionTestResult,
    ExecutionOperation,
    InvokeOperation,
    Operation,
    OperationFactory,
    StepOperation,
    WaitOperation,
    create_operation,
)
from durable.testing.views import RecordView
from durable.testing.web import WebRunner, WebRunnerConfig

# How long the background thread sleeps when nothing is due and no one nudged it: an outside
# completion (not through the runner) is seen within this, a new execution or a callback sent
# through the runner at once.
IDLE_SECONDS = 0.05
# The official runner's default name, which it makes the execution's; ours names executions
# uniquely unless the test gives one (a name starts an execution at most once here).
DEFAULT_EXECUTION_NAME = "execution-name"


# Held by whoever uses the borrowed connections: the runners' threads and their methods.
DATABASE_LOCK = threading.RLock()
# The runners open now: a jump of the shared clock moves the deadlines of all their executions.
OPEN_RUNNERS: weakref.WeakSet[DurableFunctionTestRunner] = weakref.WeakSet()


class SkipClock:
    """Real time plus every gap skipped so far: it runs with real time between jumps."""

    def __init__(self) -> None:
        self._skipped = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._skipped

    def skip_to(self, when: datetime) -> timedelta:
        """Jump to `when` if it is ahead; return how far the clock jumped."""
        with self._lock:
            gap = when - (datetime.now(UTC) + self._skipped)
            if gap <= timedelta(0):
                return timedelta(0)
            self._skipped += gap
            return gap


class DurableFunctionTestRunner:
    """Runs `handler` (a `@durable_execution` function) in the background; see the module docstring.

    `store`: the journal is the project's database, so only None is accepted.
    `max_invocation_page_bytes` and `region` are accepted and have no effect here (the whole
    journal is loaded in one query; there is no region).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        handler: Callable[..., Any],
        poll_interval: float = 1.0,
        max_invocation_page_bytes: int | None = None,
        execution_timeout: int = 300,
        invocation_timeout: int = 900,
        store: object | None = None,
        skip_time: bool = True,
        region: str = "us-west-2",
    ) -> None:
        if not isinstance(handler, DurableFunction):
            raise TypeError(f"the runner takes a @durable_execution handler, got {handler!r}")
        if store is not None:
            raise ValueError("durable's runner records executions in the project's database; pass no store")
        self._execution_timeout = validate_timeout(execution_timeout).seconds
        self._original = handler
        # The runner stands for the function's configuration: its invocation timeout applies.
        self.handler = register(replace(handler, invocation_timeout=validate_timeout(invocation_timeout)))
        self.poll_interval = poll_interval
        self.max_invocation_page_bytes = max_invocation_page_bytes
        self.region = region
        self.skip_time = skip_time
        # Runners open at once share one skipping clock (the engine has one clock) and one lock
        # (they borrow the same connections).
        enclosing = engine_clock._clock  # which clock is in use
        self.clock = (enclosing if isinstance(enclosing, SkipClock) else SkipClock()) if skip_time else None
        self.lock = DATABASE_LOCK
        self._active: dict[str, threading.Event] = {}
        self._paused: set[str] = set()
        self._nudge = threading.Event()
        self._closing = threading.Event()
        self._failure: BaseException | None = None
        self._scopes: list[Any] = [dispatch.paused()]  # the runner drives invocations, not a queue
        if self.clock is not None and self.clock is not enclosing:
            self._scopes.append(engine_clock.use_clock(self.clock))
        for scope in self._scopes:
            scope.__enter__()
        self._connections = {alias: connections[alias] for alias in connections}
        for connection in self._connections.values():
            connection.inc_thread_sharing()
        OPEN_RUNNERS.add(self)
        self._thread = threading.Thread(target=self._drive, name="durable-test-runner", daemon=True)
        self._thread.start()

    # The context manager and closing.

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the background thread (after the invocation it is running) and restore the clock."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._nudge.set()
        self._thread.join()
        OPEN_RUNNERS.discard(self)
        for connection in self._connections.values():
            connection.dec_thread_sharing()
        for scope in reversed(self._scopes):
            scope.__exit__(None, None, None)
        register(self._original)

    # Functions other executions may invoke.

    def register_durable_function(
        self,
        function_name: str,
        handler: Callable[..., Any],
        execution_timeout: int = 120,
        retention_period_days: int = 1,
    ) -> Self:
        """Make `handler` the durable function named `function_name` (a target `context.invoke` can
        start); returns the runner. `retention_period_days` has no effect here."""
        if not isinstance(handler, DurableFunction):
            raise TypeError(f"{function_name!r}: a @durable_execution handler is needed, got {handler!r}")
        register(replace(handler, name=function_name, execution_timeout=validate_timeout(execution_timeout)))
        return self

    # Starting and waiting.

    def run(
        self,
        input: str | None = None,  # noqa: A002 - the official runner's name
        execution_timeout: int | None = None,
        timeout: int | None = None,
        function_name: str = "test-function",
        execution_name: str = DEFAULT_EXECUTION_NAME,
        account_id: str = "123456789012",
        tenant_id: str | None = None,
    ) -> DurableFunctionTestResult:
        """Start the handler with `input` (JSON text) and wait until the execution ends.

        Raises TimeoutError if it has not ended after `execution_timeout` real seconds.
        """
        if timeout is not None and execution_timeout is None:
            warnings.warn(
                "timeout on run() is deprecated. Use execution_timeout instead.", DeprecationWarning, stacklevel=2
            )
            execution_timeout = timeout
        effective = execution_timeout if execution_timeout is not None else self._execution_timeout
        arn = self.run_async(
            input=input,
            execution_timeout=effective,
            function_name=function_name,
            execution_name=execution_name,
            account_id=account_id,
            tenant_id=tenant_id,
        )
        return self.wait_for_result(arn, timeout=effective)

    def run_async(
        self,
        input: str | None = None,  # noqa: A002
        execution_timeout: int | None = None,
        timeout: int | None = None,
        function_name: str = "test-function",  # a label: the runner always runs its own handler
        execution_name: str = DEFAULT_EXECUTION_NAME,
        account_id: str = "123456789012",
        tenant_id: str | None = None,
    ) -> str:
        """Start the handler and return the execution's id at once; it moves in the background.

        As on the official runner, `input` that is JSON is the event it encodes; any other text is
        the event as a string; a value that is not text (None, a dict) is the event itself.
        Raises ValidationError for a timeout outside 1 second to 366 days, or input the journal
        cannot store.
        """
        if timeout is not None and execution_timeout is None:
            execution_timeout = timeout
        event: Any = input  # not text (a dict, None): the value itself, as the official runner takes it
        if isinstance(input, str):
            with contextlib.suppress(json.JSONDecodeError):  # plain text: the event is the string
                event = json.loads(input)
        with self.lock:
            execution = client.start_execution(
                self.handler,
                event,
                execution_name=None if execution_name == DEFAULT_EXECUTION_NAME else execution_name,
                execution_timeout=execution_timeout if execution_timeout is not None else self._execution_timeout,
            )
            # Tracked in the same hold of the lock: a clock jump by another open runner's thread
            # moves the deadlines of tracked executions only, and this one's must move with them.
            self._active[str(execution.pk)] = threading.Event()
        return self._track(str(execution.pk))

    def wait_for_result(self, execution_arn: str, timeout: int = 60) -> DurableFunctionTestResult:
        """Wait (in real seconds) until the execution ends and return how it ended.

        Raises TimeoutError if it has not ended within `timeout`.
        """
        ended = self._active.get(execution_arn) or self._active[self._track(execution_arn)]
        if not ended.wait(timeout):
            self._raise_failure()
            raise TimeoutError("Execution did not complete within timeout")
        self._raise_failure()
        sinks.flush_marks()  # as a worker does when it waits for work: its deliveries recorded
        with self.lock:
            return DurableFunctionTestResult.create(client.get_execution(execution_arn))

    def wait_for_callback(self, execution_arn: str, name: str | None = None, timeout: int = 60) -> str:
        """The id of the execution's callback named `name` (or of its latest callback), once the
        invocation that created it has ended. Raises TimeoutError.

        As on the official runner (3.0.0), a callback that has already completed is still found.
        """
        deadline = time.monotonic() + timeout
        pause = min(self.poll_interval, IDLE_SECONDS)
        while time.monotonic() < deadline:  # bounded by the deadline
            self._raise_failure()
            with self.lock:  # held: no invocation is half way
                callbacks = OperationRow.objects.filter(execution_id=execution_arn, type="CALLBACK")
                if name is not None:
                    callbacks = callbacks.filter(name=name)
                found = callbacks.order_by("-id" if name is None else "id").values_list("callback_id", flat=True)
                callback_id = found.first()
            if callback_id:
                return callback_id
            time.sleep(pause)
        raise TimeoutError(f"Callback did not become available within {timeout}s.")

    # Completing callbacks: the execution moves at once.

    def send_callback_success(self, callback_id: str, result: bytes | None = None) -> None:
        with self.lock:
            client.send_callback_success(callback_id, result)
        self._nudge.set()

    def send_callback_failure(self, callback_id: str, error: ErrorObject | Any | None = None) -> None:
        with self.lock:
            client.send_callback_failure(callback_id, error)
        self._nudge.set()

    def send_callback_heartbeat(self, callback_id: str) -> None:
        with self.lock:
            client.send_callback_heartbeat(callback_id)
        self._nudge.set()

    def get_execution_history(self, execution_arn: str, include_execution_data: bool = False) -> RecordView:
        """The history as the service returns it, readable by attribute (`history.events[0].event_type`)."""
        with self.lock:
            return RecordView(client.get_history(execution_arn, include_execution_data=include_execution_data))

    def pause_execution(self, execution_arn: str, timeout: float = 60) -> None:
        """Run no more invocations of the execution until `resume_execution`; returns once none runs."""
        if not 0 < timeout < float("inf"):
            raise ValueError("timeout must be finite and positive")
        self._paused.add(execution_arn)
        if not self.lock.acquire(timeout=timeout):
            raise TimeoutError(f"an invocation of {execution_arn} still runs after {timeout}s")
        self.lock.release()

    def resume_execution(self, execution_arn: str) -> None:
        self._paused.discard(execution_arn)
        self._nudge.set()

    # The background thread.

    def _track(self, execution_id: str) -> str:
        if execution_id not in self._active:
            with self.lock:  # the background threads read every runner's executions under it
                client.get_execution(execution_id)  # raises for an unknown id
                self._active[execution_id] = threading.Event()
        self._nudge.set()
        return execution_id

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise DurableFunctionsTestError(f"the runner's background thread failed: {self._failure!r}") from (
                self._failure
            )

    def _drive(self) -> None:
        for alias, connection in self._connections.items():
            connections[alias] = connection
        try:
            while not self._closing.is_set():  # bounded: close() sets it
                self._nudge.clear()
                pause = self._advance_all()
                if pause > 0:
                    self._nudge.wait(pause)
        except BaseException as exc:  # noqa: BLE001 - reported to the test by wait_for_result
            self._failure = exc
            for ended in self._active.values():
                ended.set()

    def _advance_all(self) -> float:
        pause = IDLE_SECONDS
        with self.lock:
            for execution_id, ended in list(self._active.items()):
                if ended.is_set() or execution_id in self._paused or self._closing.is_set():
                    continue
                pause = min(pause, self._advance(execution_id, ended))
        return pause

    def _advance(self, execution_id: str, ended: threading.Event) -> float:
        """One move of one execution; returns how long it may sleep before the next move."""
        execution = client.get_execution(execution_id)
        if execution.status != ExecutionStatus.RUNNING:
            ended.set()
            return IDLE_SECONDS
        now, wake, timeout = engine_clock.now(), execution.wake_at, execution.timeout_at
        timer, deadline = self._next_times(execution_id)
        # Past its timeout the next invocation ends it, even if it waits for nothing with a deadline.
        if any(when is not None and when <= now for when in (wake, timeout, timer)):
            # Not run (its lease is held elsewhere): look again after a pause, not at once.
            return 0.0 if run_invocation(execution_id, owner="test-runner").ran else IDLE_SECONDS
        if timer is not None and self.clock is not None and (deadline is None or timer <= deadline):
            self._skip(self.clock.skip_to(timer))
            return 0.0
        soonest = min(when for when in (wake, timeout, timer, deadline) if when is not None)
        return min(IDLE_SECONDS, (soonest - now).total_seconds())

    @staticmethod
    def _next_times(execution_id: str) -> tuple[datetime | None, datetime | None]:
        """The next timer (a wait's end or a retry's time, which skipping jumps to) and the next
        callback deadline (which passes in real time) of the execution's pending operations."""
        rows = OperationRow.objects.filter(execution_id=execution_id, status__in=["STARTED", "PENDING"])
        times = rows.aggregate(
            wait=Min("wait_until", filter=Q(status="STARTED")),
            retry=Min("next_attempt_at", filter=Q(status="PENDING")),
            callback=Min("callback_deadline", filter=Q(status="STARTED")),
            heartbeat=Min("heartbeat_deadline", filter=Q(status="STARTED")),
        )

        def earliest(*found: datetime | None) -> datetime | None:
            return min((when for when in found if when is not None), default=None)

        return earliest(times["wait"], times["retry"]), earliest(times["callback"], times["heartbeat"])

    def _skip(self, gap: timedelta) -> None:
        # Deadlines count real time, as on the official runner: moved along with the jump. The
        # runner's own bookkeeping of a clock it owns, so written here, not through the store.
        if gap <= timedelta(0):
            return
        moving = [execution_id for runner in list(OPEN_RUNNERS) for execution_id in list(runner._active)]
        running = Execution.objects.filter(pk__in=moving, status=ExecutionStatus.RUNNING)
        running.update(timeout_at=F("timeout_at") + gap)
        callbacks = OperationRow.objects.filter(execution__in=running, type="CALLBACK", status="STARTED")
        callbacks.filter(callback_deadline__isnull=False).update(callback_deadline=F("callback_deadline") + gap)
        callbacks.filter(heartbeat_deadline__isnull=False).update(heartbeat_deadline=F("heartbeat_deadline") + gap)


class DurableChildContextTestRunner(DurableFunctionTestRunner):
    """Tests one `@durable_with_child_context` function on its own, as the whole handler."""

    def __init__(
        self,
        context_function: Callable[..., Callable[[Any], Any]],
        *args: Any,
        skip_time: bool = True,
        **kwargs: Any,
    ) -> None:
        def handler(event: Any, context: Any) -> Any:
            return context_function(*args, **kwargs)(context)

        name = f"{context_function.__module__}.{getattr(context_function, '__qualname__', 'child')}.test-{id(self)}"
        super().__init__(durable_execution(name=name)(handler), skip_time=skip_time)


__all__ = [
    "OPERATION_FACTORIES",
    "CallbackOperation",
    "ContextOperation",
    "DurableChildContextTestRunner",
    "DurableFunctionCloudTestRunner",
    "DurableFunctionTestResult",
    "DurableFunctionTestRunner",
    "DurableFunctionsTestError",
    "ExecutionOperation",
    "InvokeOperation",
    "Operation",
    "OperationFactory",
    "SkipClock",
    "StepOperation",
    "WaitOperation",
    "WebRunner",
    "WebRunnerConfig",
    "create_operation",
]
