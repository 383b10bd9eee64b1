"""The service API: start, inspect and stop executions (what Lambda's control plane offers).

With `durable.exceptions` and `durable.signals`, this is all a product needs of the engine:
`Execution`, `ExecutionStatus` and `OperationView` are what it reads.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from durable import clock, conf, dispatch, events, metrics, outbox, tracing
from durable.config import Duration
from durable.errors import ErrorObject
from durable.exceptions import (
    ExecutionAlreadyExistsError,
    ExecutionNotFoundError,
    ExecutionNotRunningError,
    ValidationError,
)
from durable.execution import DurableFunction, get_function, validate_timeout
from durable.history import history_events
from durable.identifier import new_execution_id
from durable.listing import callback_execution_id, filter_executions, waiting_for
from durable.models import Execution, ExecutionStatus
from durable.redrive import failure_units
from durable.state import OperationStatus
from durable.storable import storable_json, unstorable_reason, utf8_size
from durable.store import children, journal_store, sql
from durable.store.base import CallbackOutcome
from durable.timeline import OperationView, operation_views

__all__ = [
    "Execution",
    "ExecutionStatus",
    "OperationView",
    "callback_execution_id",
    "callback_result_limit",
    "filter_executions",
    "get_execution",
    "get_history",
    "invoked_execution_ids",
    "list_operations",
    "record_operator_action",
    "redrive_execution",
    "reenqueue_execution",
    "send_callback_failure",
    "send_callback_heartbeat",
    "send_callback_success",
    "set_execution_attention",
    "start_execution",
    "stop_execution",
    "waiting_for",
]


def start_execution(
    function: DurableFunction | str,
    input: Any = None,  # noqa: A002 - the service's word
    *,
    execution_name: str | None = None,
    execution_timeout: Duration | int | None = None,
    label: str = "",
) -> Execution:
    """Start an execution, or return the existing one started under the same name and input.
    `label` is for people (the admin's list shows it); the existing execution keeps its own.

    Raises ExecutionAlreadyExistsError (same name, other input), UnknownFunctionError,
    ValidationError (input not JSON, too large, a label over 200 characters, or a timeout
    outside 1 s to 366 days).
    """
    label = _short_text(label, "label")
    fn = function if isinstance(function, DurableFunction) else get_function(function)
    payload = _input_payload(input)
    timeout = validate_timeout(
        execution_timeout or fn.execution_timeout or Duration(conf.get("EXECUTION_TIMEOUT"))
    ).seconds
    # Time-ordered, as its id (which it is, when none is given): new names go to the right
    # edge of the name indexes, not to a page of their own among the waiting executions'.
    execution_id = new_execution_id()
    name = execution_name or execution_id.hex
    if len(name) > 200:
        raise ValidationError("execution_name is longer than 200 characters")
    if reason := unstorable_reason(name):
        raise ValidationError(f"execution_name cannot be stored: {reason}")
    digest = hashlib.sha256(payload.encode()).hexdigest()
    # A name we just drew at random names nothing yet: no query to look for it.
    existing = _existing(fn.name, name, digest) if execution_name else None
    if existing:
        return existing
    now = clock.now()
    values = sql.statements().new_execution(
        execution_id=execution_id,
        function_name=fn.name,
        execution_name=name,
        payload=payload,
        digest=digest,
        now=now,
        timeout_seconds=timeout,
        trace_parent=tracing.current_traceparent(),
        label=label,
    )
    try:
        started = outbox.status_change(
            execution_id=str(execution_id),
            function_name=fn.name,
            execution_name=name,
            status=ExecutionStatus.RUNNING,
            previous_status="",
            started_at=now,
            at=now,
        )
        execution = journal_store().insert_execution(
            values, [events.execution_started(payload, timeout, now)], [started]
        )
    except IntegrityError:
        # Another caller started the same name between our read and our insert.
        existing = _existing(fn.name, name, digest)
        if existing:
            return existing
        raise
    metrics.execution_started(fn.name)
    dispatch.on_commit_wake(str(execution.pk), now)
    return execution


def _status_change(
    execution: Execution,
    status: str,
    at: Any,
    error: dict[str, Any] | None,
    *,
    previous: str = ExecutionStatus.RUNNING,
) -> outbox.OutboxRecord:
    """The outbox event of a change this module writes (written with it, sent after the commit)."""
    return outbox.status_change(
        execution_id=str(execution.pk),
        function_name=execution.function_name,
        execution_name=execution.execution_name,
        status=status,
        previous_status=previous,
        started_at=execution.created_at,
        at=at,
        error=error,
    )


# The longest label or attention text an execution keeps (its model's max_length).
MAX_LABEL_CHARS = 200


def _short_text(text: str, what: str) -> str:
    """A label or attention text, stripped and checked once, here (it is stored as it is)."""
    if not isinstance(text, str):
        raise ValidationError(f"{what} must be a string, not {type(text).__name__}")
    text = " ".join(text.split())
    if len(text) > MAX_LABEL_CHARS:
        raise ValidationError(f"{what} is longer than {MAX_LABEL_CHARS} characters")
    if reason := unstorable_reason(text):
        raise ValidationError(f"{what} cannot be stored: {reason}")
    return text


def set_execution_attention(execution_id: str | uuid.UUID, text: str) -> Execution:
    """Mark the execution as needing an operator's look (`text` says why), or clear the mark
    with "". Any status: a SUCCEEDED execution whose webhook was never delivered is the case
    this is for. Raises ExecutionNotFoundError, ValidationError (text over 200 characters).
    """
    text = _short_text(text, "attention")
    execution = get_execution(execution_id, include_data=False)
    Execution.objects.filter(pk=execution.pk).update(attention=text)
    execution.attention = text
    return execution


def _input_payload(value: Any) -> str:
    try:
        payload = json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"execution input must be JSON-serializable: {exc}") from exc
    limit = conf.get("MAX_INPUT_BYTES")
    if len(payload.encode()) > limit:
        raise ValidationError(f"execution input is {len(payload.encode())} bytes; the limit is {limit}")
    return payload


def _existing(function_name: str, name: str, digest: str) -> Execution | None:
    found = Execution.objects.filter(function_name=function_name, execution_name=name).first()
    if found and found.input_hash != digest:
        raise ExecutionAlreadyExistsError(
            f"an execution named {name!r} of {function_name} already exists with a different input"
        )
    return found


def get_execution(execution_id: str | uuid.UUID, *, include_data: bool = True) -> Execution:
    """The execution; without `include_data`, its input, result and error are left unread (for
    pages that poll its status: those may be 256 KiB each). Raises ExecutionNotFoundError."""
    rows = Execution.objects if include_data else Execution.objects.defer("input", "result", "error")
    try:
        return rows.get(pk=execution_id)
    except (Execution.DoesNotExist, ValueError, DjangoValidationError):
        raise ExecutionNotFoundError(f"no execution with id {execution_id}") from None


def invoked_execution_ids(execution_id: str | uuid.UUID) -> list[uuid.UUID]:
    """The executions this one's invokes started (context.invoke), oldest first."""
    return list(
        Execution.objects.filter(parent_execution_id=uuid.UUID(str(execution_id)))
        .order_by("created_at")
        .values_list("pk", flat=True)
    )


def list_operations(execution_id: str | uuid.UUID) -> list[OperationView]:
    """The execution's operations, depth-first in journal order: each child context followed by
    what ran inside it, with its depth. Raises ExecutionNotFoundError."""
    execution = get_execution(execution_id)
    return operation_views(execution.pk)


def get_history(execution_id: str | uuid.UUID, *, include_execution_data: bool = True) -> dict[str, Any]:
    """The execution's events in the official service's shape: {"Events": [...]}."""
    execution = get_execution(execution_id)
    return {"Events": history_events(execution, include_execution_data=include_execution_data)}


def stop_execution(execution_id: str | uuid.UUID, *, error: dict[str, Any] | None = None) -> Execution:
    """Stop a RUNNING execution; a running invocation's next checkpoint is refused.

    Raises ExecutionNotFoundError, ExecutionNotRunningError.
    """
    now = clock.now()
    error = storable_json(error)  # an operator's reason: kept, escaped where it must be
    execution = get_execution(execution_id)
    with transaction.atomic():
        stopped = _status_change(execution, ExecutionStatus.STOPPED, now, error)
        if not journal_store().stop_execution(
            str(execution.pk), now, error, [events.execution_stopped(error, now)], [stopped]
        ):
            execution.refresh_from_db()
            raise ExecutionNotRunningError(f"execution {execution.pk} is {execution.status}, not RUNNING")
        # An invoked execution's stop ends its parent's invoke (InvokeError) in the same transaction.
        execution.status, execution.error = ExecutionStatus.STOPPED, error
        parent = children.complete_parent_operation(execution, now)
    if parent is not None:
        dispatch.on_commit_wake(parent, now)
    _stop_children(str(execution.pk), error)
    execution.refresh_from_db()
    return execution


# However many executions a stop reaches through invokes (children, theirs...), it ends.
MAX_STOPPED_DESCENDANTS = 10_000


def _stop_children(execution_id: str, error: dict[str, Any] | None) -> None:
    """Stop what the stopped execution invoked, and what those invoked, each in a transaction of
    its own (child before parent is the lock order; a stop that dies midway is finished by the
    children's next invocations, which find their parent stopped)."""
    reason = error or ErrorObject("ExecutionStopped", f"its parent execution {execution_id} was stopped").to_dict()
    pending, stopped = [execution_id], 0
    while pending and stopped < MAX_STOPPED_DESCENDANTS:
        level, pending = children.running_children(pending), []
        for child_id in level[: MAX_STOPPED_DESCENDANTS - stopped]:
            now = clock.now()
            child = get_execution(child_id, include_data=False)
            stopped_event = _status_change(child, ExecutionStatus.STOPPED, now, reason)
            if journal_store().stop_execution(
                child_id, now, reason, [events.execution_stopped(reason, now)], [stopped_event]
            ):
                pending.append(child_id)
                stopped += 1


def reenqueue_execution(execution_id: str | uuid.UUID) -> Execution:
    """Make a RUNNING execution due now and dispatch it under a fresh job id (for one whose
    wake-up was lost or is stuck in the queue); a live lease still keeps a second worker out.

    Raises ExecutionNotFoundError, ExecutionNotRunningError.
    """
    now = clock.now()
    execution = get_execution(execution_id)
    if not journal_store().wake_execution(
        str(execution.pk), now, [events.execution_reenqueued(execution.wake_at, now)]
    ):
        execution.refresh_from_db()
        raise ExecutionNotRunningError(f"execution {execution.pk} is {execution.status}, not RUNNING")
    dispatch.on_commit_wake(str(execution.pk), now)
    execution.refresh_from_db()
    return execution


def record_operator_action(execution_id: str | uuid.UUID, *, action: str, user: str, **details: Any) -> None:
    """Append who did what by hand (stop, redrive, complete a callback...) to the history."""
    execution = get_execution(execution_id)
    action_details = storable_json({"Action": action, "User": user, **details})
    journal_store().append_events(str(execution.pk), [events.operator_action(action_details, clock.now())])


def callback_result_limit() -> int:
    """The largest callback result `send_callback_success` accepts, in UTF-8 bytes."""
    limit: int = conf.get("MAX_CALLBACK_RESULT_BYTES")
    return limit


def send_callback_success(callback_id: str, result: bytes | str | None = None) -> None:
    """Complete a callback with `result` (delivered to the handler as a string, or via its serdes).

    Raises CallbackNotFoundError, CallbackAlreadyCompletedError, CallbackExpiredError,
    ValidationError (not UTF-8, text the journal cannot store, or too large); nothing changes
    when it raises.
    """
    payload = result.decode("utf-8", errors="strict") if isinstance(result, bytes) else result
    if payload is not None:
        reason = unstorable_reason(payload)
        if reason:
            raise ValidationError(f"the callback result cannot be stored: {reason}")
        limit = conf.get("MAX_CALLBACK_RESULT_BYTES")
        if utf8_size(payload) > limit:
            raise ValidationError(f"callback result is larger than {limit} bytes")
    _wake(journal_store().complete_callback(callback_id, clock.now, status=OperationStatus.SUCCEEDED, result=payload))


def send_callback_failure(callback_id: str, error: BaseException | dict[str, Any] | Any | None = None) -> None:
    """Complete a callback with a failure; the handler sees CallbackError carrying it.

    `error` is an exception, a dict in the journal's shape (ErrorType, ErrorMessage, ErrorData,
    StackTrace) or an object with `type`, `message`, `data` (the official ErrorObject). Text the
    journal cannot store (NUL, lone surrogates) is kept escaped. Raises as send_callback_success
    does.
    """
    _wake(
        journal_store().complete_callback(
            callback_id, clock.now, status=OperationStatus.FAILED, error=_error_payload(error)
        )
    )


def _wake(outcome: CallbackOutcome) -> None:
    """The completed callback's execution is due: dispatch it after the commit (not the sweep)."""
    dispatch.on_commit_wake(outcome.execution_id, outcome.at)


def send_callback_heartbeat(callback_id: str) -> None:
    """Push back a callback's heartbeat deadline. Raises as send_callback_success does."""
    journal_store().complete_callback(callback_id, clock.now, status=OperationStatus.STARTED, heartbeat=True)


def _error_payload(error: Any) -> dict[str, Any]:
    if error is None:
        return ErrorObject("CallbackError", "the callback failed").to_dict()
    if isinstance(error, BaseException):
        return ErrorObject(type(error).__name__, str(error)).to_dict()
    if isinstance(error, dict):
        found = ErrorObject.from_dict(error)
    else:  # the official ErrorObject, or anything with its fields
        found = ErrorObject(
            getattr(error, "type", None) or "",
            getattr(error, "message", None) or str(error),
            getattr(error, "data", None),
            list(getattr(error, "stack_trace", None) or []),
        )
    return ErrorObject(found.type or "CallbackError", found.message, found.data, found.stack_trace).to_dict()


def redrive_execution(execution_id: str | uuid.UUID) -> Execution:
    """Resume a FAILED execution (e.g. after a code fix) from its last completed operation.

    Completed operations are kept, and so are failures the handler caught. Only the unit whose
    failure ended the execution runs again: the failed step (or wait_for_callback, whose new
    callback id its submitter must hand out again) is cleared, and the failed child contexts
    around it are reopened with their completed operations kept. Raises ExecutionNotFoundError,
    or ExecutionNotRunningError if the execution is not FAILED.
    """
    now = clock.now()
    execution = get_execution(execution_id)
    # The operations do not change while the execution is FAILED: read them before the write,
    # which reopens the execution only if it is still FAILED.
    cleared, contexts = failure_units(execution)
    event = events.execution_redriven(cleared, contexts, execution.error, now)
    timeout_at = now + timedelta(seconds=execution.timeout_seconds)
    reopened = _status_change(execution, ExecutionStatus.RUNNING, now, None, previous=ExecutionStatus.FAILED)
    if not journal_store().reopen_execution(str(execution.pk), now, timeout_at, cleared, contexts, [event], [reopened]):
        execution.refresh_from_db()
        raise ExecutionNotRunningError(f"execution {execution.pk} is {execution.status}; only FAILED ones redrive")
    dispatch.on_commit_wake(str(execution.pk), now)
    execution.refresh_from_db()
    return execution
