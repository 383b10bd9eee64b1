"""The journal's writes for child executions (`context.invoke`): start, end, stop.

Starting a child writes the parent's invoke START and the child's row in one transaction
fenced by the parent's lease: whoever commits first wins, so a replay (or a second delivery)
never starts a second child, and a worker that lost its lease starts none. A child's end
completes the parent's operation in the same transaction as the child's own end, locking the
parent's row after the child's (child before parent, everywhere), and makes the parent due:
the wake-up is in the database, so the sweep re-dispatches one that Redis lost.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction

from durable import conf, events, metrics, outbox, tracing
from durable.config import Duration
from durable.errors import ErrorObject
from durable.exceptions import UnknownFunctionError
from durable.execution import get_function
from durable.models import Execution, ExecutionStatus, Operation
from durable.state import Checkpoint, ChildStart, OperationStatus
from durable.store import journal_store, sql
from durable.store import outbox as outbox_store

if TYPE_CHECKING:
    from durable.store.leased import LeasedJournal

# The official service's error types for a target it cannot find and a child that timed out.
NOT_FOUND = "ResourceNotFoundException"
TIMED_OUT = "ChainedInvoke.Timeout"


def function_error(function_name: str) -> dict[str, Any] | None:
    """The error of invoking a name no durable function is registered under, else None."""
    try:
        get_function(function_name)
    except UnknownFunctionError as exc:
        return ErrorObject(NOT_FOUND, f"Function not found: {function_name}. {exc}").to_dict()
    return None


def start_child(journal: LeasedJournal, checkpoints: list[Checkpoint], child: ChildStart) -> str:
    """The parent's checkpoints (the invoke's START last) and the child's row in one fenced
    transaction; returns the child's id (an existing child of this operation is kept: a
    redriven parent waits for the same child). Raises LeaseLostError (nothing is written)."""
    fn = get_function(child.function_name)
    now = journal.clock()
    timeout = child.timeout_seconds or (fn.execution_timeout or Duration(conf.get("EXECUTION_TIMEOUT"))).seconds
    parent_id = journal.execution_id
    with transaction.atomic():
        existing = Execution.objects.filter(
            parent_execution_id=uuid.UUID(parent_id), parent_operation_id=child.parent_operation_id
        ).first()
        child_id = str(existing.pk) if existing else child.child_execution_id
        if existing:
            for checkpoint in checkpoints:
                for event in checkpoint.events:
                    if event.event_type == events.EventType.CHAINED_INVOKE_STARTED:
                        event.details["DurableExecutionArn"] = child_id
        journal.store.write(journal, checkpoints, [], {}, None)
        if existing is None:
            values = sql.statements().new_execution(
                execution_id=child_id,
                function_name=fn.name,
                execution_name=f"{parent_id}:{child.parent_operation_id}",
                payload=child.payload,
                digest=hashlib.sha256(child.payload.encode()).hexdigest(),
                now=now,
                timeout_seconds=timeout,
                parent_execution_id=parent_id,
                parent_operation_id=child.parent_operation_id,
                trace_parent=tracing.current_traceparent(),  # the parent invocation's span
            )
            started = outbox.status_change(
                execution_id=child_id,
                function_name=fn.name,
                execution_name=values["execution_name"],
                status=ExecutionStatus.RUNNING,
                previous_status="",
                started_at=now,
                at=now,
            )
            journal.store.insert_execution(values, [events.execution_started(child.payload, timeout, now)], [started])
            metrics.execution_started(fn.name)
        Operation.objects.filter(execution_id=parent_id, operation_id=child.parent_operation_id).update(
            child_execution_id=child_id
        )
        if existing is not None and existing.status != ExecutionStatus.RUNNING:
            complete_parent_operation(existing, now)
    return child_id


def outcome(child: Execution) -> tuple[OperationStatus, str | None, dict[str, Any] | None]:
    """What an ended child makes of its parent's operation (the official service's mapping)."""
    status = ExecutionStatus(child.status)
    if status is ExecutionStatus.SUCCEEDED:
        return OperationStatus.SUCCEEDED, child.result, None
    if status is ExecutionStatus.TIMED_OUT:
        message = f"CHAINED_INVOKE timed out after {child.timeout_seconds} seconds."
        return OperationStatus.TIMED_OUT, None, ErrorObject(TIMED_OUT, message).to_dict()
    if status is ExecutionStatus.STOPPED:
        error = child.error or ErrorObject("ExecutionStopped", f"execution {child.pk} was stopped").to_dict()
        return OperationStatus.STOPPED, None, error
    return OperationStatus.FAILED, None, child.error or ErrorObject("InvokeError", "Chained invoke failed.").to_dict()


def complete_parent_operation(child: Execution, now: datetime) -> str | None:
    """In the caller's transaction, after the child's end: complete the parent's invoke with
    the child's outcome if it is still waiting, and make the parent due. Returns the parent's
    id if it is to be woken."""
    if child.parent_execution_id is None or child.parent_operation_id is None:
        return None
    parent_id = str(child.parent_execution_id)
    # The parent's row before its operation's, as invocations lock them.
    if not Execution.objects.filter(pk=parent_id, status=ExecutionStatus.RUNNING).update(wake_at=now, updated_at=now):
        return None  # an ended parent's end stands (the official service drops the outcome too)
    status, result, error = outcome(child)
    waiting = Operation.objects.filter(
        execution_id=parent_id, operation_id=child.parent_operation_id, status=OperationStatus.STARTED
    )
    if not waiting.update(status=status, result=result, error=error, ended_at=now):
        return parent_id
    record = journal_record(parent_id, child.parent_operation_id)
    event = events.chained_invoke_ended(status, error, has_result=result is not None, operation=record, at=now)
    journal_store().append_events(parent_id, [event])
    outbox_store.write_operation_events(parent_id, [record], now)
    return parent_id


def journal_record(execution_id: str, operation_id: str) -> Any:
    row = (
        Operation.objects.filter(execution_id=execution_id, operation_id=operation_id)
        .values_list(*sql.OPERATION_FIELDS)
        .first()
    )
    return sql.record(row) if row else None


def running_children(execution_ids: list[str]) -> list[str]:
    """The RUNNING children of these executions."""
    return [
        str(pk)
        for pk in Execution.objects.filter(
            parent_execution_id__in=[uuid.UUID(str(pk)) for pk in execution_ids], status=ExecutionStatus.RUNNING
        ).values_list("pk", flat=True)
    ]


def invoked_by(execution_id: str, operation_ids: list[str]) -> list[str]:
    """The RUNNING executions these invoke operations of an execution started."""
    return [
        str(pk)
        for pk in Execution.objects.filter(
            parent_execution_id=uuid.UUID(str(execution_id)),
            parent_operation_id__in=operation_ids,
            status=ExecutionStatus.RUNNING,
        ).values_list("pk", flat=True)
    ]


def with_parents(execution_ids: list[str]) -> list[Execution]:
    """Those of these executions that were started by an invoke (one query)."""
    if not execution_ids:
        return []
    return list(Execution.objects.filter(pk__in=execution_ids, parent_execution__isnull=False))


def parent_stopped(execution: Execution) -> bool:
    """Whether the execution's parent was stopped (its children are stopped with it)."""
    if execution.parent_execution_id is None:
        return False
    return Execution.objects.filter(pk=execution.parent_execution_id, status=ExecutionStatus.STOPPED).exists()


def running_descendants(execution_id: str, limit: int = 1000) -> list[tuple[str, datetime | None]]:
    """The RUNNING executions this one invoked, and those they invoked: (id, wake_at) each."""
    found: list[tuple[str, datetime | None]] = []
    level = [execution_id]
    while level and len(found) < limit:
        rows = list(
            Execution.objects.filter(
                parent_execution_id__in=[uuid.UUID(str(pk)) for pk in level], status=ExecutionStatus.RUNNING
            ).values_list("pk", "wake_at")[: limit - len(found)]
        )
        found += [(str(pk), wake_at) for pk, wake_at in rows]
        level = [str(pk) for pk, _ in rows]
    return found
