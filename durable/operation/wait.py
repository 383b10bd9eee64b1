"""The wait operation: record when it ends, suspend, and succeed on the first replay after."""

from __future__ import annotations

from datetime import timedelta

from durable import events
from durable.exceptions import ValidationError
from durable.state import (
    ExecutionState,
    OperationRecord,
    OperationStatus,
    OperationSubType,
    OperationType,
)


def run_wait(state: ExecutionState, operation_id: str, parent_id: str | None, seconds: int, name: str | None) -> None:
    record = state.visit(operation_id, OperationType.WAIT, OperationSubType.WAIT, name, parent_id)
    now = state.now()
    if record is None:
        if seconds < 1:
            raise ValidationError(f"a wait lasts at least 1 second, got {seconds}")
        until = now + timedelta(seconds=seconds)
        record = OperationRecord(
            operation_id=operation_id,
            type=OperationType.WAIT,
            sub_type=OperationSubType.WAIT,
            name=name,
            status=OperationStatus.STARTED,
            parent_id=parent_id,
            wait_until=until,
            started_at=now,
        )
        # Written with the suspension's own transaction: nothing can observe the gap.
        state.checkpoint(record, [events.wait_started(seconds, until)], sync=False)
        state.suspend(f"waiting {seconds}s until {until.isoformat()}", operation_id, until)
    if record.status is OperationStatus.STARTED:
        assert record.wait_until is not None
        if record.wait_until > now:
            state.suspend(f"waiting until {record.wait_until.isoformat()}", operation_id, record.wait_until)
        record.status = OperationStatus.SUCCEEDED
        record.ended_at = now
        seconds = int((record.wait_until - record.started_at).total_seconds()) if record.started_at else seconds
        # Its time has come: a replay finds it over from the journal and the clock alone.
        state.checkpoint(record, [events.wait_succeeded(seconds)], sync=False, rederivable=True)
