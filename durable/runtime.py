"""Invocations: take the lease, load the journal in one query, replay the handler, record the end."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from durable import clock, conf, dispatch, store
from durable import lease as lease_keeper
from durable.config import Duration
from durable.context import DurableContext
from durable.exceptions import (
    CheckpointFailedError,
    ExecutionError,
    InvocationDiedError,
    InvocationError,
    LeaseLostError,
    SuspendExecution,
    UnknownFunctionError,
    error_object,
)
from durable.execution import get_function
from durable.models import Execution, ExecutionStatus
from durable.state import ExecutionState, HistoryRecord, OperationStatus, OperationType

log = logging.getLogger("durable.runtime")


@dataclass(frozen=True)
class InvocationOutcome:
    """How one invocation ended. `status` is the execution's status afterwards."""

    execution_id: str
    ran: bool
    status: str | None = None
    wake_at: datetime | None = None
    checkpoints: int = 0


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_invocation(
    execution_id: str, *, owner: str | None = None, kill_on_budget: bool = False, wait_if_early: float = 0.0
) -> InvocationOutcome:
    """Run one invocation of a RUNNING execution; returns at once if its lease is held elsewhere.

    `kill_on_budget` ends the process when the invocation overruns its time budget (for
    workers that run each invocation in a process of its own). `wait_if_early`: if the
    execution's wake-up is at most this many seconds away, sleep until it, holding the lease
    (RQ's scheduler may release a job up to a second early; a timer never fires early).
    """
    now = clock.now()
    ttl = conf.get("LEASE_SECONDS")
    lease = store.acquire_lease(str(execution_id), owner or default_owner(), now, ttl)
    if lease is None:
        return InvocationOutcome(str(execution_id), ran=False)
    execution = lease.execution
    if wait_if_early and execution.wake_at is not None:
        early = (execution.wake_at - now).total_seconds()
        if 0 < early <= wait_if_early:
            time.sleep(early)
            now = clock.now()
    journal = store.LeasedJournal(str(execution.pk), lease.token, clock.now)
    # When the execution became due: a start far after it means a lost wake-up or a slow hand-over.
    due = execution.wake_at.isoformat() if execution.wake_at else None
    invocation: dict[str, Any] = {"StartTimestamp": now.isoformat(), "DueTimestamp": due}
    limit = conf.get("INVOCATION_DEATHS_LIMIT")

    if now >= execution.timeout_at:
        message = f"execution exceeded its timeout of {execution.timeout_seconds} seconds"
        return _end(journal, [], invocation, ExecutionStatus.TIMED_OUT, error=_error("ExecutionTimedOut", message))
    if execution.consecutive_deaths > 2 * limit:
        message = (
            f"{execution.consecutive_deaths} invocations in a row died before finishing "
            "(outside any step, or faster than a step could count them); the execution is failed so it "
            "cannot loop forever"
        )
        return _end(journal, [], invocation, ExecutionStatus.FAILED, error=_error("InvocationDiedError", message))

    try:
        function = get_function(execution.function_name)
    except UnknownFunctionError as exc:
        return _end(journal, [], invocation, ExecutionStatus.FAILED, error=error_object(exc))

    operations = store.load_journal(str(execution.pk), first_invocation=execution.invocation_count == 1)
    state = ExecutionState(str(execution.pk), operations, journal, clock.now)
    if lease.took_over:
        state.death_check = _death_check(execution, lease.token, limit)
    budget = (function.invocation_timeout or Duration(conf.get("INVOCATION_TIMEOUT"))).seconds
    keeper = lease_keeper.hold(
        str(execution.pk),
        lease.token,
        ttl,
        budget,
        kill=kill_on_budget,
        on_budget=lambda: dispatch.wake(str(execution.pk), clock.now()),
    )
    with keeper:
        try:
            result = function.func(json.loads(execution.input), DurableContext(state))
            payload = _result_payload(result)
        except SuspendExecution:
            wake_at = state.next_wake_at()
            wake_at = min(wake_at, execution.timeout_at) if wake_at else execution.timeout_at
            return _end(
                journal, state.pending_checkpoints(), invocation, ExecutionStatus.RUNNING, wake_at=wake_at, state=state
            )
        except LeaseLostError:
            log.warning("invocation of %s lost its lease; stopped writing", execution.pk)
            return InvocationOutcome(str(execution.pk), ran=True, status=None, checkpoints=state.checkpoint_count)
        except CheckpointFailedError as exc:
            # Nothing more can be written; the lease expires and the sweep resumes the execution.
            log.error("invocation of %s stopped: %s", execution.pk, exc)
            return InvocationOutcome(str(execution.pk), ran=True, status=None, checkpoints=state.checkpoint_count)
        except InvocationError as exc:
            # The invocation failed, not the execution: run again from the last checkpoint.
            invocation["Error"] = error_object(exc)
            return _end(
                journal,
                state.pending_checkpoints(),
                invocation,
                ExecutionStatus.RUNNING,
                wake_at=clock.now(),
                state=state,
            )
        except Exception as exc:  # noqa: BLE001 - an unhandled error (ExecutionError included) fails it
            return _end(
                journal,
                state.pending_checkpoints(),
                invocation,
                ExecutionStatus.FAILED,
                error=error_object(exc),
                state=state,
            )
        return _end(
            journal, state.pending_checkpoints(), invocation, ExecutionStatus.SUCCEEDED, result=payload, state=state
        )


def _death_check(execution: Execution, token: str, limit: int) -> Callable[[str, str | None], Exception | None]:
    """At the first step this invocation runs for real: count the deaths at that step."""

    def check(operation_id: str, name: str | None) -> Exception | None:
        same = execution.died_at_operation == operation_id
        count = execution.deaths_at_operation + 1 if same else 1
        store.record_death(str(execution.pk), token, operation_id, count, clock.now)
        if count < limit:
            return None
        label = repr(name) if name else operation_id[:12]
        return InvocationDiedError(
            f"the invocation died {count} times in a row while running step {label} "
            "(past its time budget, or the worker was killed); counted as a failed attempt"
        )

    return check


def _result_payload(result: Any) -> str:
    try:
        return json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise ExecutionError(
            f"the handler returned a value of type {type(result).__qualname__} that is not JSON: {exc}"
        ) from exc


def _error(error_type: str, message: str) -> dict[str, Any]:
    return {"ErrorType": error_type, "ErrorMessage": message, "ErrorData": None, "StackTrace": []}


_FINAL_EVENTS = {
    ExecutionStatus.SUCCEEDED: "ExecutionSucceeded",
    ExecutionStatus.FAILED: "ExecutionFailed",
    ExecutionStatus.TIMED_OUT: "ExecutionTimedOut",
}


def _end(
    journal: store.LeasedJournal,
    checkpoints: list[Any],
    invocation: dict[str, Any],
    status: ExecutionStatus,
    *,
    result: str | None = None,
    error: dict[str, Any] | None = None,
    wake_at: datetime | None = None,
    state: ExecutionState | None = None,
) -> InvocationOutcome:
    now = clock.now()
    invocation["EndTimestamp"] = now.isoformat()
    events = [HistoryRecord("InvocationCompleted", None, invocation, now)]
    changes: dict[str, Any] = {"status": status, "wake_at": wake_at}
    if status in _FINAL_EVENTS:
        details: dict[str, Any] = {"Result": {"Payload": result, "Truncated": False}} if result is not None else {}
        if error is not None:
            details = {"Error": {"Payload": error}}
        events.append(HistoryRecord(_FINAL_EVENTS[status], None, details, now))
        changes.update(result=result, error=error, ended_at=now, wake_at=None)
    watched = [
        op.operation_id
        for op in (state if state is not None and status is ExecutionStatus.RUNNING else [])
        if op.type is OperationType.CALLBACK and op.status is OperationStatus.STARTED
    ]
    try:
        if journal.finish(checkpoints, events, watched_callbacks=watched, **changes):
            changes["wake_at"] = clock.now()
    except LeaseLostError:
        log.warning("invocation of %s lost its lease before it could finish", journal.execution_id)
        return InvocationOutcome(journal.execution_id, ran=True, status=None)
    except CheckpointFailedError as exc:
        log.error("invocation of %s could not record its end: %s", journal.execution_id, exc)
        return InvocationOutcome(journal.execution_id, ran=True, status=None)
    if status is ExecutionStatus.RUNNING and changes["wake_at"] is not None:
        dispatch.wake(journal.execution_id, changes["wake_at"])
    count = (state.checkpoint_count if state else 0) + 1
    return InvocationOutcome(
        journal.execution_id, ran=True, status=status, wake_at=changes["wake_at"], checkpoints=count
    )
