"""race (ours: the official SDK has none): run branches side by side; the first to settle wins.

A race is a CONTEXT of sub type Race holding one child context (sub type RaceBranch) per
branch, keyed by its position. Each invocation runs the branches in their order: a branch that
suspends (a timer, a callback, an invoke) steps aside and the next one runs; the first branch
that settles (returns or raises) wins. The winner is recorded, and the losers' unfinished
operations are cancelled and recorded so (WaitCancelled, CallbackCancelled, ContextCancelled,
...; an invoked execution of a loser is stopped). If every branch is waiting, the execution
suspends until the earliest of their wake-ups or any of their callbacks.

Replay is deterministic: once recorded, the winner is whatever the journal says, and a branch
recorded as settled wins again even if another could now finish too. Within one invocation,
branches that could all settle are tried in order, so the first listed wins a tie (in practice
a timer and a callback that both came due while no worker ran).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from durable import events
from durable.config import ChildConfig
from durable.errors import ErrorObject
from durable.exceptions import ChildContextError, SuspendExecution, ValidationError, raise_recorded
from durable.identifier import operation_id as child_operation_id
from durable.operation.child import run_child
from durable.serdes import SerDes, deserialize
from durable.state import (
    TERMINAL_STATUSES,
    ExecutionState,
    OperationRecord,
    OperationStatus,
    OperationType,
    check_name,
)

T = TypeVar("T")
C = TypeVar("C")

RACE = "Race"
RACE_BRANCH = "RaceBranch"
_SETTLED = (OperationStatus.SUCCEEDED, OperationStatus.FAILED)


@dataclass(frozen=True)
class RaceConfig:
    """How the branches' results are stored (default: the extended-type serdes)."""

    serdes: SerDes[Any] | None = None


@dataclass(frozen=True)
class RaceResult(Generic[T]):
    """The branch that won: its position, its name, and what it returned."""

    index: int
    name: str | None
    value: T


Branches = Sequence[Callable[[C], T]] | Mapping[str, Callable[[C], T]]


def branch_list(branches: Branches[C, T]) -> list[tuple[str | None, Callable[[C], T]]]:
    """The branches with their names (a mapping's keys, else the functions' names)."""
    if isinstance(branches, Mapping):
        named: list[tuple[str | None, Callable[[C], T]]] = list(branches.items())
    else:
        named = [(_function_name(func), func) for func in branches]
    if not named:
        raise ValidationError("race needs at least one branch")
    for name, func in named:
        if not callable(func):
            raise ValidationError(f"race branch {name!r} is not callable")
        check_name(name, "a race branch")
    return named


def _function_name(func: Callable[..., Any]) -> str | None:
    name = getattr(func, "_original_name", None) or getattr(func, "__name__", None)
    return None if name in (None, "<lambda>") else str(name)


def run_race(
    state: ExecutionState,
    operation_id: str,
    parent_id: str | None,
    name: str | None,
    branches: list[tuple[str | None, Callable[[C], T]]],
    config: RaceConfig,
    make_context: Callable[[str], C],
) -> RaceResult[T]:
    record = state.visit(operation_id, OperationType.CONTEXT, RACE, name, parent_id)
    if record is not None and record.status is OperationStatus.SUCCEEDED:
        return _recorded_winner(state, operation_id, record, config)
    if record is not None and record.status is OperationStatus.FAILED:
        raise_recorded(record.error, ChildContextError, operation_id)
    if record is None:
        record = OperationRecord(
            operation_id=operation_id,
            type=OperationType.CONTEXT,
            sub_type=RACE,
            name=name,
            status=OperationStatus.STARTED,
            parent_id=parent_id,
            started_at=state.now(),
        )
        state.checkpoint(record, [events.context_started()], sync=False)
    ids = [child_operation_id(operation_id, i + 1) for i in range(len(branches))]
    # A branch recorded as settled won already (the invocation that recorded it died before the race's end).
    order = sorted(range(len(branches)), key=lambda i: _recorded_settled(state, ids[i]))
    suspended_before = len(state.suspensions)
    first_wait: SuspendExecution | None = None
    for i in order:
        branch_name, func = branches[i]
        child_config: ChildConfig[Any] = ChildConfig(serdes=config.serdes, sub_type=RACE_BRANCH)
        try:
            value = run_child(state, ids[i], operation_id, branch_name, child_config, func, make_context)
        except SuspendExecution as wait:
            if state.halted is not wait and not isinstance(state.halted, SuspendExecution):
                raise
            # This branch waits; the others may still settle in this invocation.
            first_wait = first_wait or wait
            state.halted = None
            continue
        except ChildContextError as exc:
            _settle(state, record, ids, branches, i, suspended_before, error=exc)
            raise
        _settle(state, record, ids, branches, i, suspended_before)
        return RaceResult(i, branch_name, value)
    assert first_wait is not None
    state.halt(first_wait)
    raise SuspendExecution(f"race {name or operation_id[:12]}: every branch is waiting")


def _recorded_settled(state: ExecutionState, branch_id: str) -> int:
    branch = state.get(branch_id)
    return 0 if branch is not None and branch.status in _SETTLED else 1


def _recorded_winner(
    state: ExecutionState, operation_id: str, record: OperationRecord, config: RaceConfig
) -> RaceResult[Any]:
    winner = json.loads(record.result or "{}")
    branch = state.get(child_operation_id(operation_id, int(winner["index"]) + 1))
    payload = branch.result if branch is not None else None
    value = None if payload is None else deserialize(config.serdes, payload, operation_id, state.execution_id)
    return RaceResult(int(winner["index"]), winner.get("name"), value)


def _settle(
    state: ExecutionState,
    record: OperationRecord,
    ids: list[str],
    branches: list[tuple[str | None, Callable[..., Any]]],
    winner: int,
    suspended_before: int,
    *,
    error: ChildContextError | None = None,
) -> None:
    """Record the winner, cancel the losers' unfinished operations, end the race."""
    # What the losers suspended on no longer moves the execution.
    del state.suspensions[suspended_before:]
    winner_name = branches[winner][0]
    reason = f"lost the race {record.name or record.operation_id[:12]} to branch {winner_name or winner}"
    losers = {branch_id for i, branch_id in enumerate(ids) if i != winner}
    callbacks = []
    for op in _descendants(state, losers):
        if op.status in TERMINAL_STATUSES:
            continue
        if op.type is OperationType.CALLBACK:
            callbacks.append(op)  # its sender may be completing it now: a conditional write
            continue
        op.status, op.ended_at = OperationStatus.CANCELLED, state.now()
        op.next_attempt_at = op.wait_until = op.callback_deadline = op.heartbeat_deadline = None
        if op.type is OperationType.CHAINED_INVOKE:
            state.cancelled_invokes.append(op.operation_id)
        state.checkpoint(op, [events.operation_cancelled(op.type.value, reason)], sync=False)
    if callbacks:
        state.cancel_callbacks(callbacks, reason)
    now = state.now()
    if error is None:
        record.status, record.ended_at = OperationStatus.SUCCEEDED, now
        record.result = json.dumps({"index": winner, "name": winner_name})
        state.checkpoint(record, [events.context_succeeded()])
    else:
        record.status, record.ended_at = OperationStatus.FAILED, now
        record.error = ErrorObject.from_exception(error).to_dict()
        state.checkpoint(record, [events.context_failed(record.error)])
        error.operation_id = record.operation_id


def _descendants(state: ExecutionState, roots: set[str]) -> list[OperationRecord]:
    """The operations inside these contexts (and the contexts), in journal order."""
    inside = set(roots)
    found = []
    for op in list(state):  # the journal is in order: a parent comes before what it holds
        if op.operation_id in inside or op.parent_id in inside:
            inside.add(op.operation_id)
            found.append(op)
    return found
