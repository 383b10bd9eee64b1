"""Virtual contexts, which record nothing of themselves: the items of a FLAT map or parallel,
and `run_in_child_context` with `ChildConfig(is_virtual=True)`.

Why: `NestingType.FLAT` spares the row and the two writes a child context costs per item. As
in the official SDK, an item's operations still take their ids from the item's index-derived
id (so a replay never depends on which item finished first) but record the batch as their
parent, and no row says how the item ended: a replay re-derives that by running the item's
body again over its operations' checkpoints (completed operations return what they recorded).

A virtual child context (ChildConfig(is_virtual=True)) is the same without a batch: its
operations record the caller's parent, and every replay runs its function again.

Nesting is part of what a replay must find again. A row at a virtual context's id was written
by a context of its own (a NESTED item), so it is refused here; the reverse (a NESTED replay of
a FLAT journal) is refused by the parents the item's operations recorded, or by the batch
finding no end for the item.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from durable.errors import ErrorObject
from durable.exceptions import FATAL, ExecutionError, NonDeterministicExecutionError
from durable.operation.child import _recorded_error
from durable.serdes import SerDes, deserialize, serialize
from durable.state import ExecutionState

T = TypeVar("T")
C = TypeVar("C")  # the context type (DurableContext)


def refuse_recorded(state: ExecutionState, operation_id: str, what: str) -> None:
    """Refuse a journal that holds a row at a virtual context's id: it was recorded with a
    context of its own (NESTED, or without is_virtual). Raises NonDeterministicExecutionError."""
    if state.get(operation_id) is not None:
        raise NonDeterministicExecutionError(
            f"{what}, but the journal holds a context of its own at {operation_id[:12]} (it was recorded "
            "NESTED, or without is_virtual): how a context is recorded cannot change under a running execution",
            operation_id,
        )


def check_flat_item(state: ExecutionState, item_id: str, index: int, batch_id: str) -> None:
    """Refuse a journal that recorded this FLAT item NESTED. Raises NonDeterministicExecutionError."""
    refuse_recorded(state, item_id, f"item {index} of batch {batch_id[:12]} runs with NestingType.FLAT")


def run_virtual_child(
    state: ExecutionState,
    operation_id: str,
    parent_id: str | None,
    serdes: SerDes[Any] | None,
    func: Callable[[C], T],
    make_context: Callable[..., C],
) -> T:
    """Run `func` in a virtual context (its operations' ids from `operation_id`, their parent
    `parent_id`) and return its result as a replay returns it (through `serdes`); nothing of
    the context itself is written. The caller has refused a recorded row (refuse_recorded).

    Raises ChildContextError naming the inner error's type when `func` fails, as a recorded
    context does; what ends the invocation as it is.
    """
    try:
        result = func(make_context(operation_id, parent_id=parent_id, virtual=True))
        if result is None:
            return result
        text = serialize(serdes, result, operation_id, state.execution_id)
        value: T = deserialize(serdes, text, operation_id, state.execution_id)
    except BaseException as exc:
        if isinstance(exc, (*FATAL, ExecutionError)) or state.halted is not None:
            raise
        raise _recorded_error(ErrorObject.from_exception(exc).to_dict(), operation_id) from exc
    return value


def run_virtual_context(
    state: ExecutionState,
    operation_id: str,
    parent_id: str | None,
    name: str | None,
    serdes: SerDes[Any] | None,
    func: Callable[[C], T],
    make_context: Callable[..., C],
) -> T:
    """`run_in_child_context` with `ChildConfig(is_virtual=True)`: `func` in a virtual context
    whose operations record `parent_id` (the caller's own parent), run again on every replay.

    Raises ChildContextError when `func` fails; NonDeterministicExecutionError if the journal
    recorded this context with a row of its own.
    """
    state.enter("context", name)
    label = f"child context {name!r}" if name else f"child context {operation_id[:12]}"
    refuse_recorded(state, operation_id, f"{label} runs with ChildConfig(is_virtual=True)")
    return run_virtual_child(state, operation_id, parent_id, serdes, func, make_context)
