"""Which operations a redrive runs again: the unit whose failure ended the execution, no more.

When an execution fails, the runtime records the failure path of the error that ended it
(`durable.exceptions.failure_path`): the operations whose recorded failures it came from,
outermost first, along explicit causes. A failure the handler caught is not on it, so a
redrive never repeats work the handler had dealt with (a card charged and declined stays
declined). Along the path, a failed step is cleared so it runs again; a failed child context
is reopened, its completed operations kept, so only its failed part runs again; a
wait_for_callback is cleared whole, because a new callback is useless unless its submitter
hands out the new id. Operations the handler ran after a failure on the path, because of it
(cleanup before raising it on), are cleared as well. An item of a FLAT map or parallel has no
row: its operations are found under its batch by the ids they derive from the item's.
"""

from __future__ import annotations

from durable.concurrency.models import CompletionRecord
from durable.exceptions import DurableOperationError
from durable.identifier import operation_id as derive_id
from durable.models import Execution, Operation
from durable.state import OperationStatus, OperationSubType, OperationType

_FAILED = (OperationStatus.FAILED, OperationStatus.TIMED_OUT)
_BATCHES = ("Map", "Parallel")


def _operation_error_types() -> set[str]:
    found, todo = set(), [DurableOperationError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


def failure_units(execution: Execution) -> tuple[list[str], list[str]]:
    """(operations to clear, child contexts to reopen), in journal order."""
    ops = list(execution.operations.order_by("id"))
    by_id = {op.operation_id: op for op in ops}
    children: dict[str | None, list[Operation]] = {}
    for op in ops:
        children.setdefault(op.parent_id, []).append(op)
    path = execution.failed_operations
    if path is None:
        path = _latest_failure(children, None)  # failed before failure paths were recorded
    on_path = [by_id[op_id] for op_id in path if op_id in by_id and by_id[op_id].status in _FAILED]
    clear: set[str] = set()
    reopen: set[str] = set()
    for op_id in path:
        if op_id not in by_id:
            _reopen_flat_item(op_id, ops, by_id, children, clear, reopen)
    operation_errors = _operation_error_types()
    for op in on_path:
        if op.type == OperationType.CONTEXT and op.sub_type != OperationSubType.WAIT_FOR_CALLBACK:
            reopen.add(op.operation_id)
            inner = [c for c in children.get(op.operation_id, []) if c.operation_id in path]
            recorded_type = (op.error or {}).get("ErrorType")
            if not inner and recorded_type in operation_errors:
                # The context failed because an operation inside it did, but the chain of
                # causes was cut (its failure was replayed from the journal): the latest
                # failure inside it is the one that propagated.
                for inner_op in _latest_failure(children, op.operation_id):
                    target = reopen if by_id[inner_op].type == OperationType.CONTEXT else clear
                    target.add(inner_op)
        else:
            clear.add(op.operation_id)
    # What the handler did after a failure on the path, in the same context, it did because of
    # that failure (it caught the error, cleaned up, and raised on): the fixed code may take
    # another branch there, so those operations go too. "After" is by time, not journal order.
    # A batch's items are no one's consequence: they run side by side, whatever failed first.
    for op in on_path:
        parent = by_id.get(op.parent_id or "")
        if parent is not None and parent.sub_type in _BATCHES:
            continue
        for sibling in children.get(op.parent_id, []):
            if sibling.pk > op.pk and _began_after(sibling, op):
                clear.add(sibling.operation_id)
    # An item of a map or parallel failed without failing its batch (the failure was in the
    # BatchResult): the batch, and the contexts around it, are reopened too, so it runs again
    # live, its ended items replayed from their rows and the reopened item run on.
    for op_id in list(clear | reopen):
        parent = by_id.get(by_id[op_id].parent_id or "")
        if parent is None or parent.sub_type not in _BATCHES:
            continue
        while parent is not None and parent.type == OperationType.CONTEXT and parent.operation_id not in clear:
            reopen.add(parent.operation_id)
            parent = by_id.get(parent.parent_id or "")
    # A cleared operation takes everything inside it along (a wait_for_callback's callback and
    # submitter): it runs again whole.
    for op in ops:  # journal order: parents come before their children
        if op.parent_id in clear:
            clear.add(op.operation_id)
    order = [op.operation_id for op in ops]
    return [i for i in order if i in clear], [i for i in order if i in reopen and i not in clear]


def _reopen_flat_item(
    item_id: str,
    ops: list[Operation],
    by_id: dict[str, Operation],
    children: dict[str | None, list[Operation]],
    clear: set[str],
    reopen: set[str],
) -> None:
    """A failed FLAT item on the path (its id has no row): its latest failed operation is cleared
    (or reopened, a context), and its batch and the contexts around it are reopened, so the item
    runs again live. An id that is no FLAT item's is left alone."""
    for batch in ops:
        if batch.sub_type not in _BATCHES or batch.status != OperationStatus.SUCCEEDED:
            continue
        record = CompletionRecord.from_summary_payload(batch.result)
        started = record.started_total if record else 0
        if not any(derive_id(batch.operation_id, index) == item_id for index in range(started)):
            continue
        siblings = children.get(batch.operation_id, [])
        own_ids = {derive_id(item_id, counter) for counter in range(1, len(siblings) + 1)}
        # Only the item's own operations at the batch's level; deeper ones as they are.
        own = [op for op in siblings if op.operation_id in own_ids]
        for inner_id in _latest_failure({**children, batch.operation_id: own}, batch.operation_id):
            (reopen if by_id[inner_id].type == OperationType.CONTEXT else clear).add(inner_id)
        parent: Operation | None = batch
        while parent is not None and parent.type == OperationType.CONTEXT and parent.operation_id not in clear:
            reopen.add(parent.operation_id)
            parent = by_id.get(parent.parent_id or "")
        return


def _began_after(op: Operation, failed: Operation) -> bool:
    if op.started_at is None or failed.ended_at is None:
        return True  # journal order is all there is
    return op.started_at >= failed.ended_at


def _latest_failure(children: dict[str | None, list[Operation]], parent_id: str | None) -> list[str]:
    """The chain down from the latest failed operation under `parent_id` (a guess used only when
    no failure path was recorded)."""
    failed = [op for op in children.get(parent_id, []) if op.status in _FAILED]
    if not failed:
        return []
    latest = max(failed, key=lambda op: (op.ended_at.timestamp() if op.ended_at else 0.0, op.pk))
    if latest.type == OperationType.CONTEXT and latest.sub_type != OperationSubType.WAIT_FOR_CALLBACK:
        return [latest.operation_id, *_latest_failure(children, latest.operation_id)]
    return [latest.operation_id]
