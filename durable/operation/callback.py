"""Callbacks: an id the outside world completes; the handler suspends until it does.

A callback's id is random (192 bits, URL-safe) and written to the journal before any code can
hand it out. Results arrive as raw strings unless the config gives a serdes.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from durable import events
from durable.config import CallbackConfig
from durable.errors import CALLBACK_HEARTBEAT_TIMEOUT, CALLBACK_TIMEOUT, ErrorObject
from durable.exceptions import (
    CallbackError,
    CallbackExternalError,
    CallbackTimeoutError,
    InvalidStateError,
    raise_recorded,
)
from durable.serdes import PassThroughSerDes, SerDes, deserialize
from durable.state import (
    ExecutionState,
    OperationRecord,
    OperationStatus,
    OperationSubType,
    OperationType,
)

T = TypeVar("T")

_RAW = PassThroughSerDes()


def new_callback_id() -> str:
    return secrets.token_urlsafe(24)


class Callback(Generic[T]):
    """A callback created by the handler; `result()` suspends until it is completed."""

    def __init__(
        self, callback_id: str, operation_id: str, state: ExecutionState, serdes: SerDes[Any] | None = None
    ) -> None:
        self.callback_id = callback_id
        self.operation_id = operation_id
        self.state = state
        self.serdes = serdes

    def result(self) -> T | None:
        """The completion's result. Raises CallbackError (failure) or CallbackTimeoutError."""
        self.state.enter("the result of callback", self.operation_id[:12])
        record = self.state.get(self.operation_id)
        if record is None:
            raise InvalidStateError(f"callback {self.operation_id} is not in the journal")
        if record.status is OperationStatus.STARTED:
            # It may have been completed since this invocation loaded the journal.
            record = self.state.refresh(self.operation_id) or record
        while True:
            if record.status is OperationStatus.SUCCEEDED:
                if record.result is None:
                    return None
                value: T = deserialize(self.serdes or _RAW, record.result, self.operation_id, self.state.execution_id)
                return value
            if record.status is OperationStatus.FAILED:
                raise_recorded(record.error, CallbackExternalError, self.operation_id)
            if record.status is OperationStatus.TIMED_OUT:
                raise_recorded(record.error, CallbackTimeoutError, self.operation_id)
            if record.status is not OperationStatus.STARTED:
                raise CallbackError(f"callback {record.name or self.operation_id} ended {record.status}")
            now = self.state.now()
            error = timeout_error(record, now)
            if error is None:
                break
            # Whoever commits first wins: the time-out is written only if no completion or
            # heartbeat committed since the callback was read; if one did, it is read again.
            timed_out = replace(record, status=OperationStatus.TIMED_OUT, ended_at=now, error=error)
            event = events.callback_timed_out(error)
            if self.state.time_out(timed_out, [event]):
                raise_recorded(error, CallbackTimeoutError, self.operation_id)
            record = self.state.refresh(self.operation_id) or record
        message = f"waiting for callback {record.name or record.operation_id[:12]}"
        self.state.suspend(message, self.operation_id, record.wake_at(), callback=True)


def timeout_error(record: OperationRecord, now: datetime) -> dict[str, Any] | None:
    """The error of a pending callback past its timeout or heartbeat deadline at `now`, or None.

    Its type and text are the official service's ("Callback.Timeout", "Callback.Heartbeat"):
    the journal and the history read as the service's would; the handler sees CallbackTimeoutError.
    """
    if record.callback_deadline and now >= record.callback_deadline:
        return ErrorObject(CALLBACK_TIMEOUT, "Callback timed out").to_dict()
    if record.heartbeat_deadline and now >= record.heartbeat_deadline:
        return ErrorObject(CALLBACK_HEARTBEAT_TIMEOUT, "Callback timed out on heartbeat").to_dict()
    return None


def create_callback(
    state: ExecutionState, operation_id: str, parent_id: str | None, name: str | None, config: CallbackConfig
) -> Callback[Any]:
    sub_type = config.sub_type or OperationSubType.CALLBACK.value
    record = state.visit(operation_id, OperationType.CALLBACK, sub_type, name, parent_id)
    if record is None:
        now = state.now()
        callback_id = new_callback_id()
        record = OperationRecord(
            operation_id=operation_id,
            type=OperationType.CALLBACK,
            sub_type=sub_type,
            name=name,
            status=OperationStatus.STARTED,
            parent_id=parent_id,
            callback_id=callback_id,
            started_at=now,
            callback_deadline=now + timedelta(seconds=config.timeout_seconds) if config.timeout_seconds else None,
            heartbeat_deadline=(
                now + timedelta(seconds=config.heartbeat_timeout_seconds) if config.heartbeat_timeout_seconds else None
            ),
            heartbeat_seconds=config.heartbeat_timeout_seconds or None,
        )
        # Synchronous: the id must be on disk before anyone can be told it.
        event = events.callback_started(callback_id, config.timeout_seconds, config.heartbeat_timeout_seconds)
        state.checkpoint(record, [event])
    # A callback past its deadline is timed out when it is awaited (or by the sweep), not here:
    # one nobody awaits cannot move the execution, and it does not keep it due.
    assert record.callback_id is not None
    return Callback(record.callback_id, operation_id, state, config.serdes)
