"""wait_for_condition: poll a check, keeping its state in the journal, until a strategy says stop.

Recorded as the official SDK records it: a STEP of sub type WaitForCondition whose attempt
counts the polls made. Each poll runs the check on the state the last poll stored; the wait
strategy then either ends the operation with that state (SUCCEEDED) or records the state with
the next poll's time (PENDING) and suspends, so nothing runs between polls and no process
holds the execution. A check that raises, or a strategy out of attempts, fails the operation
at once (no retries): WaitForConditionError, carrying the original error's type.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

from durable import events
from durable.errors import ErrorObject
from durable.exceptions import (
    FATAL,
    ExecutionError,
    InvocationError,
    SerDesError,
    WaitForConditionError,
    raise_recorded,
)
from durable.logger import ReplayAwareLogger
from durable.serdes import deserialize, serialize
from durable.state import ExecutionState, OperationRecord, OperationStatus, OperationSubType, OperationType
from durable.storable import unstorable_reason, utf8_size
from durable.types import WaitForConditionCheckContext
from durable.waits import WaitForConditionConfig

T = TypeVar("T")


def run_wait_for_condition(
    state: ExecutionState,
    operation_id: str,
    parent_id: str | None,
    name: str | None,
    check: Callable[[T, WaitForConditionCheckContext], T],
    config: WaitForConditionConfig[T],
    logger: ReplayAwareLogger,
) -> T:
    sub_type = OperationSubType.WAIT_FOR_CONDITION.value
    record = state.visit(operation_id, OperationType.STEP, sub_type, name, parent_id)
    label = f"{name!r} ({operation_id[:12]})" if name else operation_id[:12]
    if record is not None:
        if record.status is OperationStatus.SUCCEEDED:
            done: T = _decode(state, config, record.result, operation_id)
            return done
        if record.status is OperationStatus.FAILED:
            raise_recorded(record.error, WaitForConditionError, operation_id)
        if record.status is OperationStatus.PENDING and record.next_attempt_at and record.next_attempt_at > state.now():
            state.suspend(
                f"wait_for_condition {label} polls again at {record.next_attempt_at.isoformat()}",
                operation_id,
                record.next_attempt_at,
            )
    if record is None:
        record = OperationRecord(
            operation_id=operation_id,
            type=OperationType.STEP,
            sub_type=sub_type,
            name=name,
            status=OperationStatus.READY,
            parent_id=parent_id,
        )
    attempt = record.attempt + 1  # the record counts the polls made
    # Each poll is recorded as started, as the official SDK does (it rides with the next write).
    record.status = OperationStatus.STARTED
    record.started_at = record.started_at or state.now()
    record.next_attempt_at = None
    state.checkpoint(record, [events.step_started()], sync=False)
    try:
        if record.result is not None:
            current = _decode(state, config, record.result, operation_id)
        else:
            # The first poll sees the initial state as the journal would give it back.
            current = _decode(
                state, config, _encode(state, config, config.initial_state, operation_id, label), operation_id
            )
        context = WaitForConditionCheckContext(
            logger=logger.with_extra(operation_id=operation_id, attempt=attempt), attempt=attempt
        )
        with state.running_step(label):
            new_state = check(current, context)
        if state.nested is not None:
            raise state.nested
        payload = _encode(state, config, new_state, operation_id, label)
        # The strategy judges the state a replay would see, not the object the check returned.
        decision = config.wait_strategy(_decode(state, config, payload, operation_id), attempt)
    except BaseException as exc:
        if state.nested is not None:
            raise state.nested from None
        # An InvocationError ends the invocation, not the operation: the poll runs again.
        if isinstance(exc, (*FATAL, ExecutionError, InvocationError)):
            raise
        _fail(state, record, attempt, exc)
    record.attempt = attempt
    record.result = payload
    if not decision.should_continue:
        record.status = OperationStatus.SUCCEEDED
        record.ended_at = state.now()
        state.checkpoint(record, [events.step_succeeded_once()], sync=False)
        result: T = _decode(state, config, payload, operation_id)
        return result
    delay = max(1, decision.delay_seconds)
    record.status = OperationStatus.PENDING
    record.next_attempt_at = state.now() + timedelta(seconds=delay)
    state.checkpoint(record, [events.condition_polled(attempt, delay)], sync=False)
    state.suspend(
        f"wait_for_condition {label} poll {attempt} not satisfied; polling again in {delay}s",
        operation_id,
        record.next_attempt_at,
    )


def _fail(state: ExecutionState, record: OperationRecord, attempt: int, error: BaseException) -> NoReturn:
    record.status = OperationStatus.FAILED
    record.attempt = attempt
    record.error = ErrorObject.from_exception(error).to_dict()
    record.ended_at = state.now()
    state.checkpoint(record, [events.step_failed(record.error, attempt, 0)])
    raise_recorded(record.error, WaitForConditionError, record.operation_id)


def _encode(
    state: ExecutionState, config: WaitForConditionConfig[Any], value: Any, operation_id: str, label: str
) -> str:
    """The state as the journal stores it. Raises SerDesError naming the operation and why."""
    payload = serialize(config.serdes, value, operation_id, state.execution_id)
    reason = unstorable_reason(payload)
    if reason:
        raise SerDesError(f"wait_for_condition {label}: the state cannot be stored: {reason}", "SerDesError")
    size = utf8_size(payload)
    if size > state.max_result_bytes:
        raise SerDesError(
            f"wait_for_condition {label}: the state is {size} bytes once serialized; "
            f"the limit is {state.max_result_bytes} bytes",
            "SerDesError",
        )
    return payload


def _decode(state: ExecutionState, config: WaitForConditionConfig[Any], payload: str | None, operation_id: str) -> Any:
    if payload is None:
        return None
    return deserialize(config.serdes, payload, operation_id, state.execution_id)
