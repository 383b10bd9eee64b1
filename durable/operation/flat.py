"""FLAT items of map and parallel: each runs in a virtual context that records nothing of itself.

Why: `NestingType.FLAT` spares the row and the two writes a child context costs per item. As
in the official SDK, an item's operations still take their ids from the item's index-derived
id (so a replay never depends on which item finished first) but record the batch as their
parent, and no row says how the item ended: a replay re-derives that by running the item's
body again over its operations' checkpoints (completed operations return what they recorded).

Nesting is part of what a replay must find again. A row at a FLAT item's id was written by a
NESTED item, so it is refused here; the reverse (a NESTED replay of a FLAT journal) is refused
by the parents the item's operations recorded, or by the batch finding no end for the item.
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


def check_flat_item(state: ExecutionState, item_id: str, index: int, batch_id: str) -> None:
    """Refuse a journal that recorded this FLAT item NESTED (a context of its own).

    Raises NonDeterministicExecutionError.
    """
    if state.get(item_id) is not None:
        raise NonDeterministicExecutionError(
            f"item {index} of batch {batch_id[:12]} runs with NestingType.FLAT, but the journal holds a "
            f"context of its own at {item_id[:12]} (it was recorded NESTED): the nesting type cannot change "
            "under a running execution",
            item_id,
        )


def run_flat_item(
    state: ExecutionState,
    item_id: str,
    batch_id: str,
    index: int,
    serdes: SerDes[Any] | None,
    func: Callable[[C], T],
    make_context: Callable[[str, str], C],
) -> T:
    """Run a FLAT item's body in a virtual context (ids from `item_id`, parent `batch_id`) and
    return its result as a replay returns it (through `serdes`); nothing of the item is written.

    Raises ChildContextError naming the inner error's type when the body fails, as a NESTED
    item does; NonDeterministicExecutionError (see check_flat_item); what ends the invocation.
    """
    check_flat_item(state, item_id, index, batch_id)
    try:
        result = func(make_context(item_id, batch_id))
        if result is None:
            return result
        text = serialize(serdes, result, item_id, state.execution_id)
        value: T = deserialize(serdes, text, item_id, state.execution_id)
    except BaseException as exc:
        if isinstance(exc, (*FATAL, ExecutionError)) or state.halted is not None:
            raise
        raise _recorded_error(ErrorObject.from_exception(exc).to_dict(), item_id) from exc
    return value
