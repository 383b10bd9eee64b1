"""The replay core's view of one execution: its journal in memory and the checkpoint queue.

Plain Python: the journal store behind `JournalWriter` is the only thing that touches a
database. Checkpoints are applied to the in-memory journal at once; synchronous ones are
written before the call returns, buffered ones ride along with the next synchronous write.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from durable.exceptions import NonDeterministicExecutionError


class OperationType(enum.StrEnum):
    STEP = "STEP"
    WAIT = "WAIT"
    CALLBACK = "CALLBACK"
    CONTEXT = "CONTEXT"
    INVOKE = "INVOKE"


class OperationSubType(enum.StrEnum):
    STEP = "Step"
    WAIT = "Wait"
    CALLBACK = "Callback"
    RUN_IN_CHILD_CONTEXT = "RunInChildContext"
    WAIT_FOR_CALLBACK = "WaitForCallback"


class OperationStatus(enum.StrEnum):
    STARTED = "STARTED"
    PENDING = "PENDING"
    READY = "READY"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"


TERMINAL_STATUSES = frozenset(
    {
        OperationStatus.SUCCEEDED,
        OperationStatus.FAILED,
        OperationStatus.CANCELLED,
        OperationStatus.TIMED_OUT,
        OperationStatus.STOPPED,
    }
)


@dataclass
class OperationRecord:
    """One operation's current state: a row of the journal."""

    operation_id: str
    type: OperationType
    sub_type: str
    name: str | None
    status: OperationStatus
    parent_id: str | None = None
    attempt: int = 0
    result: str | None = None
    error: dict[str, Any] | None = None
    next_attempt_at: datetime | None = None
    wait_until: datetime | None = None
    callback_id: str | None = None
    callback_deadline: datetime | None = None
    heartbeat_deadline: datetime | None = None
    heartbeat_seconds: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def wake_at(self) -> datetime | None:
        """When the engine must look at this operation again without outside help."""
        if self.status is OperationStatus.PENDING:
            return self.next_attempt_at
        if self.status is OperationStatus.STARTED:
            times = [t for t in (self.wait_until, self.callback_deadline, self.heartbeat_deadline) if t]
            return min(times) if times else None
        return None


@dataclass
class HistoryRecord:
    """One event for the history; `details` holds the per-type details in the official shape."""

    event_type: str
    operation: OperationRecord | None
    details: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None


@dataclass
class Checkpoint:
    record: OperationRecord
    events: list[HistoryRecord]


class JournalWriter(Protocol):
    def write(self, checkpoints: list[Checkpoint]) -> None:
        """Persist the checkpoints in one transaction, fenced by the lease; raises LeaseLostError."""

    def transaction(self) -> AbstractContextManager[Any]:
        """A transaction in which a body's writes and its checkpoint commit together."""

    def reload(self, operation_id: str) -> OperationRecord | None:
        """Read one operation again (the outside world may have completed it)."""


class ExecutionState:
    """The journal of one execution as this invocation sees it."""

    def __init__(
        self,
        execution_id: str,
        operations: dict[str, OperationRecord],
        writer: JournalWriter,
        clock: Callable[[], datetime],
    ) -> None:
        self.execution_id = execution_id
        self.operations = operations
        self.writer = writer
        self.now = clock
        self._buffer: list[Checkpoint] = []
        self._completed_at_load = {op_id for op_id, op in operations.items() if op.status in TERMINAL_STATUSES}
        # Replaying until the code reaches an operation with work left to do (or a new one).
        self._replaying = bool(operations)
        self.checkpoint_count = 0
        # Set when this invocation took over from one that died: called once, at the first step
        # attempt it runs for real, it may return the error that attempt fails with.
        self.death_check: Callable[[str, str | None], Exception | None] | None = None

    def get(self, operation_id: str) -> OperationRecord | None:
        return self.operations.get(operation_id)

    def visit(
        self, operation_id: str, type_: OperationType, sub_type: str, name: str | None, parent_id: str | None
    ) -> OperationRecord | None:
        """Return the journal's record at this id after checking it matches what the code asks."""
        record = self.operations.get(operation_id)
        if record is None:
            self._replaying = False
            return None
        asked = (type_.value, sub_type, name or None, parent_id or None)
        held = (record.type.value, record.sub_type, record.name or None, record.parent_id or None)
        if asked != held:
            raise NonDeterministicExecutionError(_describe_mismatch(operation_id, held, asked), operation_id)
        if operation_id not in self._completed_at_load:
            self._replaying = False
        return record

    def take_death_check(self) -> Callable[[str, str | None], Exception | None] | None:
        check, self.death_check = self.death_check, None
        return check

    def is_replaying(self) -> bool:
        """True until the handler reaches the first operation not completed before this invocation."""
        return self._replaying

    def checkpoint(self, record: OperationRecord, events: list[HistoryRecord], *, sync: bool = True) -> None:
        """Apply a change to the journal; write it now if `sync`, else with the next write."""
        now = self.now()
        snapshot = replace(record)  # the state written now (the record itself changes on)
        for event in events:
            event.timestamp = event.timestamp or now
            event.operation = snapshot
        self.operations[record.operation_id] = record
        self._buffer.append(Checkpoint(snapshot, events))
        if sync:
            self.flush()

    def refresh(self, operation_id: str) -> OperationRecord | None:
        """Re-read an operation that others may change (a callback); keeps the newer state."""
        fresh = self.writer.reload(operation_id)
        if fresh is not None:
            self.operations[operation_id] = fresh
        return fresh

    def flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        self.writer.write(batch)
        self.checkpoint_count += 1

    def pending_checkpoints(self) -> list[Checkpoint]:
        """Take the buffered checkpoints, for a caller that writes them in its own transaction."""
        batch, self._buffer = self._buffer, []
        return batch

    def next_wake_at(self) -> datetime | None:
        times = [t for op in self.operations.values() if (t := op.wake_at())]
        return min(times) if times else None

    def __iter__(self) -> Iterator[OperationRecord]:
        return iter(self.operations.values())


def _describe_mismatch(operation_id: str, held: tuple[Any, ...], asked: tuple[Any, ...]) -> str:
    labels = ("type", "sub type", "name", "parent")
    diffs = [
        f"{label}: journal has {h!r}, code asks for {a!r}"
        for label, h, a in zip(labels, held, asked, strict=True)
        if h != a
    ]
    return (
        f"Non-deterministic execution at operation {operation_id}: the journal holds "
        f"{held[0]} {held[2]!r} (sub type {held[1]}) at this position, but the code asked for "
        f"{asked[0]} {asked[2]!r} (sub type {asked[1]}). Differences: " + "; ".join(diffs) + ". "
        "Code changed under a running execution; restore the old order or redrive after a fix."
    )
