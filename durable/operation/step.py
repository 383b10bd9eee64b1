"""The step operation: run a body once per attempt, checkpoint its result, retry per strategy."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NoReturn, TypeVar, cast

from durable import events, logcontext, metrics, tracing
from durable.config import StepConfig, StepSemantics
from durable.errors import ErrorObject
from durable.exceptions import (
    FATAL,
    ExecutionError,
    SerDesError,
    StepError,
    StepInterruptedError,
    ValidationError,
    raise_recorded,
)
from durable.logger import ReplayAwareLogger
from durable.operation.step_timeout import time_limit
from durable.retries import RetryPresets, max_attempts
from durable.serdes import deserialize, serialize
from durable.state import (
    ExecutionState,
    OperationRecord,
    OperationStatus,
    OperationSubType,
    OperationType,
)
from durable.storable import unstorable_reason, utf8_size
from durable.types import StepContext

T = TypeVar("T")
_STEP = OperationSubType.STEP.value


class StepOperation:
    def __init__(
        self,
        state: ExecutionState,
        operation_id: str,
        parent_id: str | None,
        name: str | None,
        config: StepConfig,
        logger: ReplayAwareLogger,
    ) -> None:
        if config.timeout is not None and config.timeout.to_seconds() < 1:
            raise ValidationError(f"a step timeout lasts at least 1 second, got {config.timeout.to_seconds()}")
        self.state = state
        self.operation_id = operation_id
        self.parent_id = parent_id
        self.name = name
        self.config = config
        self.sub_type = config.sub_type or _STEP
        self.logger = logger

    def run(self, func: Callable[[StepContext], T]) -> T:
        record = self.state.visit(self.operation_id, OperationType.STEP, self.sub_type, self.name, self.parent_id)
        if record is None:
            record = self._new_record()
        elif record.status is OperationStatus.SUCCEEDED:
            value: T = self._decode(record.result)
            return value
        elif record.status is OperationStatus.FAILED:
            raise_recorded(record.error, StepError, self.operation_id)
        elif record.status is OperationStatus.PENDING:
            assert record.next_attempt_at is not None
            if record.next_attempt_at > self.state.now():
                self.state.suspend(
                    f"step {self._label()} retries at {record.next_attempt_at.isoformat()}",
                    self.operation_id,
                    record.next_attempt_at,
                )
        elif record.status is OperationStatus.STARTED:
            if self.config.step_semantics is StepSemantics.AT_MOST_ONCE_PER_RETRY:
                # An earlier invocation began this attempt and never recorded its end: the body
                # may have run, so this attempt counts as failed rather than running again.
                self._failed(
                    record,
                    StepInterruptedError(
                        f"step {self._label()} attempt {record.attempt} was interrupted",
                        self.operation_id,
                    ),
                )
            # At least once per retry: the same attempt runs again.
            return self._attempt(func, record, record.attempt)
        return self._attempt(func, record, record.attempt + 1)

    def _new_record(self) -> OperationRecord:
        return OperationRecord(
            operation_id=self.operation_id,
            type=OperationType.STEP,
            sub_type=self.sub_type,
            name=self.name,
            status=OperationStatus.READY,
            parent_id=self.parent_id,
        )

    def _label(self) -> str:
        return f"{self.name!r} ({self.operation_id[:12]})" if self.name else self.operation_id[:12]

    def _decode(self, payload: str | None) -> Any:
        if payload is None:
            return None
        return deserialize(self.config.serdes, payload, self.operation_id, self.state.execution_id)

    def _attempt(self, func: Callable[[StepContext], T], record: OperationRecord, attempt: int) -> T:
        # Every log line of the attempt carries the step's ids; a span when the invocation is traced.
        ids = logcontext.bound(operation_id=self.operation_id, operation_name=self.name, attempt=attempt)
        with ids, tracing.step_span(self.state.execution_id, self.operation_id, self.name, attempt, record):
            return self._run_attempt(func, record, attempt)

    def _run_attempt(self, func: Callable[[StepContext], T], record: OperationRecord, attempt: int) -> T:
        check = self.state.take_death_check()
        died = check(self.operation_id, self.name) if check else None
        if died is not None:
            # Earlier invocations kept dying in this step: that counts as a failed attempt.
            record.attempt = attempt
            record.started_at = record.started_at or self.state.now()
            self._failed(record, died)
        now = self.state.now()
        record.status = OperationStatus.STARTED
        record.attempt = attempt
        record.started_at = record.started_at or now
        record.next_attempt_at = None
        at_most_once = self.config.step_semantics is StepSemantics.AT_MOST_ONCE_PER_RETRY
        # Whatever earlier operations left buffered (an at-least-once step's SUCCEEDED) is on
        # disk before this body's side effects begin, but for what a replay re-derives.
        self.state.flush_before_side_effects()
        # At-most-once must have STARTED on disk before the body runs; at-least-once lets it
        # ride with the SUCCEEDED write, saving a transaction per step.
        self.state.checkpoint(record, [events.step_started()], sync=at_most_once)
        context = StepContext(
            logger=self.logger.with_extra(operation_id=self.operation_id, attempt=attempt),
            attempt=attempt,
        )
        try:
            with self.state.running_step(self._label()):
                if self.config.transactional:
                    # On the invocation's thread (a map item's too): one connection for both.
                    value = self.state.in_transaction(lambda: self._run_body(func, context, record, attempt))
                else:
                    value = self._run_body(func, context, record, attempt)
        except BaseException as exc:
            if self.state.nested is not None:
                raise self.state.nested from None  # even if the body caught it
            if isinstance(exc, (*FATAL, ExecutionError)):
                raise
            if isinstance(exc, SerDesError):
                self._fail(record, exc)  # the same value fails the same way: no retries
            # Any other exception, BaseExceptions such as asyncio.CancelledError included, is
            # this attempt's failure, with its real type; the retry strategy decides.
            self._failed(record, exc)
        return value

    def _run_body(
        self, func: Callable[[StepContext], T], context: StepContext, record: OperationRecord, attempt: int
    ) -> T:
        timeout = self.config.timeout.to_seconds() if self.config.timeout else None
        started = time.perf_counter()
        try:
            with time_limit(timeout, f"step {self._label()} attempt {attempt}"):
                result = func(context)
        finally:
            metrics.step_ran(self.name, time.perf_counter() - started)
        if self.state.nested is not None:
            raise self.state.nested
        payload = self._payload(result)
        # Decode what was stored so the first run returns exactly what a replay will.
        value: T = self._decode(payload)
        record.status = OperationStatus.SUCCEEDED
        record.result = payload
        record.error = None
        record.ended_at = self.state.now()
        # An at-least-once step's SUCCEEDED rides with the next write: the next step flushes it
        # before its body runs, and the invocation's last transaction takes what is left. A crash
        # before then runs this step again, which at-least-once allows. A transactional step's
        # record commits with its body; an at-most-once step's is written at once.
        deferred = self.config.step_semantics is StepSemantics.AT_LEAST_ONCE_PER_RETRY and not self.config.transactional
        self.state.checkpoint(record, [events.step_succeeded(attempt)], sync=not deferred)
        return value

    def _payload(self, result: Any) -> str:
        """The result as the journal will store it. Raises SerDesError naming the step and why."""
        try:
            payload = serialize(self.config.serdes, result, self.operation_id, self.state.execution_id)
        except SerDesError as exc:
            raise SerDesError(
                f"step {self._label()} returned a value that cannot be serialized: {exc.message}",
                "SerDesError",
            ) from exc
        if not isinstance(payload, str):
            raise SerDesError(
                f"step {self._label()}: the serdes returned a {type(payload).__qualname__}, not text", "SerDesError"
            )
        reason = unstorable_reason(payload)
        if reason:
            raise SerDesError(f"step {self._label()} returned a value that cannot be stored: {reason}", "SerDesError")
        size, limit = utf8_size(payload), self.state.max_result_bytes
        if size > limit:
            raise SerDesError(
                f"step {self._label()} returned {size} bytes once serialized; the limit is {limit} bytes "
                "(settings.DURABLE['MAX_RESULT_BYTES']): store large data elsewhere and return a reference",
                "SerDesError",
            )
        return payload

    def _failed(self, record: OperationRecord, error: BaseException) -> NoReturn:
        """Record a failed attempt: schedule the next one and suspend, or fail the step."""
        strategy = self.config.retry_strategy or RetryPresets.default()
        # A BaseException a body raised (an asyncio.CancelledError) is judged like any failure.
        decision = strategy(cast(Exception, error), record.attempt)
        if not decision.should_retry:
            self._fail(record, error)
        delay = max(1, decision.delay_seconds)
        metrics.step_retry(self.name)
        record.status = OperationStatus.PENDING
        record.error = ErrorObject.from_exception(error).to_dict()
        record.next_attempt_at = self.state.now() + timedelta(seconds=delay)
        record.max_attempts = max_attempts(strategy)
        self.state.checkpoint(record, [events.step_failed(record.error, record.attempt, delay)])
        self.state.suspend(
            f"step {self._label()} attempt {record.attempt} failed; retrying in {delay}s",
            self.operation_id,
            record.next_attempt_at,
        )

    def _fail(self, record: OperationRecord, error: BaseException) -> NoReturn:
        record.status = OperationStatus.FAILED
        record.error = ErrorObject.from_exception(error).to_dict()
        record.next_attempt_at = None
        record.ended_at = self.state.now()
        self.state.checkpoint(record, [events.step_failed(record.error, record.attempt)])
        raise_recorded(record.error, StepError, self.operation_id)
