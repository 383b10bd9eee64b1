"""The replay core's view of one execution: its journal in memory and the checkpoint queue.

Plain Python: the journal store behind `JournalWriter` is the only thing that touches a
database. Checkpoints are applied to the in-memory journal at once; synchronous ones are
written before the call returns, buffered ones ride along with the next synchronous write.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, NoReturn, Protocol, TypeVar

from durable.exceptions import (
    CheckpointFailedError,
    CheckpointRefusedError,
    LeaseLostError,
    NestedOperationError,
    NonDeterministicExecutionError,
    SuspendExecution,
    TimedSuspendExecution,
    ValidationError,
)
from durable.storable import MAX_NAME_LENGTH, escape, unstorable_reason
from durable.threads import CARRIED, Funnel, current_item, in_item, refuse_if_orphaned

T = TypeVar("T")

# The step whose body runs in this thread or task, if any, with the state it belongs to.
_in_step: ContextVar[tuple[ExecutionState, str] | None] = ContextVar("durable_in_step", default=None)
CARRIED.append(_in_step)  # an item's transactional step body runs on the invocation's thread


def check_name(name: str | None, what: str) -> None:
    """Refuse an operation name that cannot be stored. Raises ValidationError."""
    if name is None:
        return
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError(
            f"the name of {what} {name[:40]!r}... is {len(name)} characters; the limit is {MAX_NAME_LENGTH}"
        )
    reason = unstorable_reason(name)
    if reason:
        raise ValidationError(f"the name of {what} {escape(name)!r} cannot be stored: {reason}")


class OperationType(enum.StrEnum):
    STEP = "STEP"
    WAIT = "WAIT"
    CALLBACK = "CALLBACK"
    CONTEXT = "CONTEXT"
    CHAINED_INVOKE = "CHAINED_INVOKE"


class OperationSubType(enum.StrEnum):
    STEP = "Step"
    WAIT = "Wait"
    CALLBACK = "Callback"
    RUN_IN_CHILD_CONTEXT = "RunInChildContext"
    WAIT_FOR_CALLBACK = "WaitForCallback"
    WAIT_FOR_CONDITION = "WaitForCondition"
    CHAINED_INVOKE = "ChainedInvoke"


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


@dataclass(slots=True)
class OperationRecord:
    """One operation's current state: a row of the journal. Slots: a replay builds one per
    row, about twice as fast so (and reads their fields faster)."""

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
    # A retrying step's attempts in all, when its strategy says (the operators' "retry N of M").
    max_attempts: int | None = None

    def wake_at(self) -> datetime | None:
        """When the engine must look at this operation again without outside help."""
        if self.status is OperationStatus.PENDING:
            return self.next_attempt_at
        if self.status is OperationStatus.STARTED:
            times = [t for t in (self.wait_until, self.callback_deadline, self.heartbeat_deadline) if t]
            return min(times) if times else None
        return None

    def copy(self) -> OperationRecord:
        """A shallow copy (dataclasses.replace, at a fifth of its cost: a checkpoint takes one)."""
        return OperationRecord(*_record_fields(self))


_record_fields = operator.attrgetter(*(f.name for f in fields(OperationRecord)))


class Journal(dict[str, OperationRecord]):
    """An execution's journal as its load found it, by operation id, with what the load noted
    on its way so that nothing walks the whole journal again: the ids of the operations that had
    ended (the replay's "completed before this invocation"), and the records that may have woken
    the execution (not ended, or a callback: see durable.metrics.resumed)."""

    def __init__(self) -> None:
        super().__init__()
        self.ended: set[str] = set()
        self.waking: list[OperationRecord] = []

    def add(self, record: OperationRecord) -> None:
        self[record.operation_id] = record
        if record.status in TERMINAL_STATUSES:
            self.ended.add(record.operation_id)
            if record.type is OperationType.CALLBACK:
                self.waking.append(record)
        else:
            self.waking.append(record)


def waking_records(operations: dict[str, OperationRecord]) -> Iterable[OperationRecord]:
    """The records that may have woken the execution (all of them, unless the load noted which)."""
    return operations.waking if isinstance(operations, Journal) else operations.values()


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
    # A replay comes to the same change from the journal alone (a wait's end, once its time has
    # come): no step's side effects wait for it to be on disk; it rides with the next write.
    rederivable: bool = False


class JournalWriter(Protocol):
    def write(self, checkpoints: list[Checkpoint]) -> None:
        """Persist the checkpoints in one transaction, fenced by the lease; raises LeaseLostError."""

    def transaction(self) -> AbstractContextManager[Any]:
        """A transaction in which a body's writes and its checkpoint commit together."""

    def reload(self, operation_id: str) -> OperationRecord | None:
        """Read one operation again (the outside world may have completed it)."""

    def function_error(self, function_name: str) -> dict[str, Any] | None:
        """The error of invoking `function_name` if no durable function is registered under it."""

    def start_child(self, checkpoints: list[Checkpoint], child: ChildStart) -> None:
        """Write the checkpoints (an invoke's START last) and create the child execution in one
        fenced transaction, so a replay never starts it twice; the child is due at once."""

    def cancel_callbacks(self, operation_ids: list[str], reason: str, now: datetime) -> list[str]:
        """Cancel those of these callbacks still pending when the write commits (fenced), with
        their events; returns their ids. A completion that committed first keeps its place."""

    def time_out(self, record: OperationRecord, events: list[HistoryRecord], now: datetime) -> bool:
        """Write a callback's time-out, fenced, only if the callback is still STARTED with a
        deadline at or before `now` when the write commits; False if a completion or a
        heartbeat committed first (then nothing is written)."""


@dataclass(frozen=True)
class ChildStart:
    """An execution to start for `context.invoke`, linked to its parent's operation."""

    parent_operation_id: str
    child_execution_id: str
    function_name: str
    payload: str
    timeout_seconds: int | None = None


@dataclass(frozen=True)
class Suspension:
    """Where this invocation suspended: the operation, and when it can move without outside
    help (None: only a callback's completion, or the execution's timeout, will move it)."""

    operation_id: str | None
    wake_at: datetime | None
    callback: bool = False


class ExecutionState:
    """The journal of one execution as this invocation sees it."""

    def __init__(
        self,
        execution_id: str,
        operations: dict[str, OperationRecord],
        writer: JournalWriter,
        clock: Callable[[], datetime],
        *,
        max_result_bytes: int = 256 * 1024,
    ) -> None:
        self.execution_id = execution_id
        self.max_result_bytes = max_result_bytes
        self.operations = operations
        self.writer = writer
        self.now = clock
        self._buffer: list[Checkpoint] = []
        self._completed_at_load = (
            operations.ended  # noted by the load (read only here)
            if isinstance(operations, Journal)
            else {op_id for op_id, op in operations.items() if op.status in TERMINAL_STATUSES}
        )
        # Replaying until the code reaches an operation with work left to do (or a new one).
        self._replaying = bool(operations)
        self.checkpoint_count = 0
        # Set when this invocation took over from one that died: called once, at the first step
        # attempt it runs for real, it may return the error that attempt fails with.
        self.death_check: Callable[[str, str | None], Exception | None] | None = None
        # Set once the invocation is over but for the unwinding: suspended, lease lost, journal
        # unwritable. Whatever the handler does next (it may catch BaseException and carry on),
        # no operation runs, and the invocation ends the way this says.
        self.halted: BaseException | None = None
        self.suspensions: list[Suspension] = []
        # Set when an operation was started inside a step body; fails the execution.
        self.nested: NestedOperationError | None = None
        # Invokes of a race's losing branches: their child executions are stopped once written.
        self.cancelled_invokes: list[str] = []
        # Map and parallel items run on threads; the journal is read and written on this one.
        self.funnel = Funnel()

    def get(self, operation_id: str) -> OperationRecord | None:
        return self.operations.get(operation_id)

    def enter(self, kind: str, name: str | None = None) -> None:
        """Check that an operation (of `kind`, named `name`) may run now: not after the invocation
        halted, not inside a step's body. Raises the halt again, or NestedOperationError."""
        if self.halted is not None:
            if isinstance(self.halted, SuspendExecution):
                raise SuspendExecution(self.halted.message)
            raise self.halted
        if in_item():
            item = current_item()
            if item is not None and item.halted is not None:
                raise SuspendExecution(str(item.halted))
            refuse_if_orphaned()
        held = _in_step.get()
        if held is not None and held[0] is self:
            kind = kind.lower()  # visit passes the OperationType itself: no string made per operation
            what = f"{kind} {name!r}" if name else kind
            self.nested = NestedOperationError(
                f"{what} was started inside the body of step {held[1]}; a step body is one unit of work "
                "whose result is checkpointed once, so it cannot run operations: move them out of the step, "
                "or group them with run_in_child_context"
            )
            raise self.nested

    @contextmanager
    def running_step(self, label: str) -> Iterator[None]:
        """Mark a step body as running, so an operation started inside it is refused."""
        token = _in_step.set((self, label))
        try:
            yield
        finally:
            _in_step.reset(token)

    def halt(self, reason: BaseException) -> None:
        """Remember what ended the invocation (the first thing only)."""
        if self.halted is None:
            self.halted = reason

    def suspend(
        self, message: str, operation_id: str | None, wake_at: datetime | None, *, callback: bool = False
    ) -> NoReturn:
        """Suspend the invocation on an operation; the execution wakes at `wake_at` (or on a
        callback). Inside a map or parallel item, only that item suspends. Raises SuspendExecution."""
        self.suspend_on([Suspension(operation_id, wake_at, callback)], message)

    def suspend_on(self, suspensions: list[Suspension], message: str) -> NoReturn:
        """Suspend on all of `suspensions` (a batch whose running items all suspended): the
        innermost batch item, or else the invocation. Raises SuspendExecution."""
        times = [s.wake_at for s in suspensions if s.wake_at is not None]
        exc = TimedSuspendExecution.from_datetime(message, min(times)) if times else SuspendExecution(message)
        item = current_item()
        if item is not None:
            item.suspensions.extend(suspensions)
            item.halted = item.halted or exc
            raise exc
        self.suspensions.extend(suspensions)
        self.halt(exc)
        raise exc

    def visit(
        self, operation_id: str, type_: OperationType, sub_type: str, name: str | None, parent_id: str | None
    ) -> OperationRecord | None:
        """Return the journal's record at this id after checking it matches what the code asks.

        Raises NonDeterministicExecutionError; ValidationError for a new operation whose name
        cannot be stored; the halt or NestedOperationError (see `enter`).
        """
        self.enter(type_, name)
        record = self.operations.get(operation_id)
        if record is None:
            check_name(name, f"the {type_.value.lower()} operation")
            self._replaying = False
            return None
        # Field by field, the enums compared as the strings they are: this runs for every
        # operation a replay passes (the tuples below only to describe a mismatch).
        if (
            record.type != type_
            or record.sub_type != sub_type
            or (record.name or None) != (name or None)
            or (record.parent_id or None) != (parent_id or None)
        ):
            asked = (type_.value, sub_type, name or None, parent_id or None)
            held = (record.type.value, record.sub_type, record.name or None, record.parent_id or None)
            raise NonDeterministicExecutionError(_describe_mismatch(operation_id, held, asked), operation_id)
        if operation_id not in self._completed_at_load:
            self._replaying = False
        return record

    def take_death_check(self) -> Callable[[str, str | None], Exception | None] | None:
        with self.funnel.lock:
            check, self.death_check = self.death_check, None
        if check is None:
            return None
        found = check
        return lambda operation_id, name: self.funnel.on_owner(lambda: found(operation_id, name))

    def is_replaying(self) -> bool:
        """True until the handler reaches the first operation not completed before this invocation."""
        return self._replaying

    def checkpoint(
        self, record: OperationRecord, events: list[HistoryRecord], *, sync: bool = True, rederivable: bool = False
    ) -> None:
        """Apply a change to the journal; write it now if `sync`, else with the next write
        (`rederivable`: see Checkpoint).

        Raises OrphanedChildException in an item its batch no longer waits for."""
        now = self.now()
        snapshot = record.copy()  # the state written now (the record itself changes on)
        for event in events:
            event.timestamp = event.timestamp or now
            event.operation = snapshot
        with self.funnel.lock:
            refuse_if_orphaned()
            self.operations[record.operation_id] = record
            self._buffer.append(Checkpoint(snapshot, events, rederivable))
        if sync:
            self.flush()

    def start_child(self, record: OperationRecord, events: list[HistoryRecord], child: ChildStart) -> None:
        """Checkpoint an invoke's START with what is buffered, and start its child execution in
        the same transaction. Raises what `flush` raises."""
        self.checkpoint(record, events, sync=False)
        batch = self.pending_checkpoints()
        try:
            self.writer.start_child(batch, child)
        except (LeaseLostError, CheckpointFailedError, CheckpointRefusedError) as exc:
            self.halt(exc)
            raise
        self.checkpoint_count += 1

    def cancel_callbacks(self, records: list[OperationRecord], reason: str) -> None:
        """Cancel these pending callbacks unless completed meanwhile (then they are read again)."""
        self.flush()
        now = self.now()
        try:
            cancelled = set(self.writer.cancel_callbacks([r.operation_id for r in records], reason, now))
        except (LeaseLostError, CheckpointFailedError, CheckpointRefusedError) as exc:
            self.halt(exc)
            raise
        self.checkpoint_count += 1
        for record in records:
            if record.operation_id in cancelled:
                record.status, record.ended_at = OperationStatus.CANCELLED, now
            else:
                self.refresh(record.operation_id)

    def time_out(self, record: OperationRecord, events: list[HistoryRecord]) -> bool:
        """Record a callback's time-out at once, if no completion or heartbeat committed first.

        `record` holds the timed-out state. Returns False (and changes nothing) if the callback
        moved on meanwhile: the caller reads it again.
        """
        return self.funnel.on_owner(lambda: self._time_out(record, events))

    def _time_out(self, record: OperationRecord, events: list[HistoryRecord]) -> bool:
        self.flush()
        now = self.now()
        snapshot = record.copy()
        for event in events:
            event.timestamp = event.timestamp or now
            event.operation = snapshot
        try:
            won = self.writer.time_out(snapshot, events, now)
        except (LeaseLostError, CheckpointFailedError, CheckpointRefusedError) as exc:
            self.halt(exc)
            raise
        self.checkpoint_count += 1
        if won:
            self.operations[record.operation_id] = record
        return won

    def refresh(self, operation_id: str) -> OperationRecord | None:
        """Re-read an operation that others may change (a callback); keeps the newer state."""
        fresh = self.funnel.on_owner(lambda: self.writer.reload(operation_id))
        if fresh is not None:
            self.operations[operation_id] = fresh
        return fresh

    def in_transaction(self, work: Callable[[], T]) -> T:
        """Run `work` (a transactional step's body and checkpoint) in the writer's transaction,
        on the invocation's thread: the body's writes share the checkpoint's connection."""

        def run() -> T:
            with self.writer.transaction():
                return work()

        return self.funnel.on_owner(run)

    def flush(self) -> None:
        """Write what is buffered, on the invocation's thread. Whoever writes takes the whole
        buffer at that moment, so writes go out in the order the checkpoints were made."""
        self.funnel.on_owner(self._write_buffered)

    def flush_before_side_effects(self) -> None:
        """Write what is buffered before a step's body runs, unless a replay would re-derive
        all of it: a resumed wait's end then rides with the step's own write, one transaction
        fewer for every wait (and none of the step's effects can depend on it being on disk)."""
        with self.funnel.lock:
            if all(c.rederivable for c in self._buffer):
                return
        self.flush()

    def _write_buffered(self) -> None:
        with self.funnel.lock:
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, []
        try:
            self.writer.write(batch)
        except (LeaseLostError, CheckpointFailedError, CheckpointRefusedError) as exc:
            # The batch is not on disk, while the journal in memory says it is: nothing more
            # may run in this invocation.
            self.halt(exc)
            raise
        self.checkpoint_count += 1

    def pending_checkpoints(self) -> list[Checkpoint]:
        """Take the buffered checkpoints, for a caller that writes them in its own transaction."""
        with self.funnel.lock:
            batch, self._buffer = self._buffer, []
        return batch

    def next_wake_at(self) -> datetime | None:
        """When the operations this invocation suspended on can move without outside help.

        Only those count: a callback created and never awaited, or one inside a child context
        that completed, cannot move the execution, and its passed deadline must not keep it due.
        """
        times = [s.wake_at for s in self.suspensions if s.wake_at is not None]
        return min(times) if times else None

    def awaited_callbacks(self) -> list[str]:
        """The callbacks this invocation suspended on: one completed meanwhile is not lost."""
        return [s.operation_id for s in self.suspensions if s.callback and s.operation_id]

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
