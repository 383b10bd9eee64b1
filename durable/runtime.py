"""Invocations: take the lease, load the journal in one query, replay the handler, record the end.

How an invocation ends is decided in one place, `_Ending.after`, from what stopped the handler:

| what stopped it | the execution afterwards |
|---|---|
| it returned | SUCCEEDED (FAILED if the value cannot be stored) |
| a suspension (a wait, a retry delay, a callback) | RUNNING, due when what it waits on can move |
| an InvocationError | RUNNING, due after a backoff; FAILED after INVOCATION_DEATHS_LIMIT in a row |
| the lease was lost | untouched: another invocation owns it |
| the database could not be reached | untouched: the lease lapses and a later invocation resumes |
| the database refused a write's values | FAILED, saying so (every retry would fail the same way) |
| any other exception | FAILED, with the failure path a redrive will re-run |
| SystemExit, KeyboardInterrupt | the process goes; the lease lapses; the next holder counts a death |

Once an operation has suspended (or the lease is lost, or the journal cannot be written), the
invocation ends that way whatever the handler does next: it may catch BaseException and carry
on, but no operation runs after that point and what it returns or raises is ignored.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from durable import clock, conf, dispatch, events, signals, store
from durable import lease as lease_keeper
from durable.config import Duration
from durable.context import DurableContext
from durable.errors import ErrorObject
from durable.exceptions import (
    CheckpointFailedError,
    CheckpointRefusedError,
    ExecutionError,
    InvocationDiedError,
    InvocationError,
    LeaseLostError,
    SuspendExecution,
    UnknownFunctionError,
    failure_path,
)
from durable.execution import get_function
from durable.models import Execution, ExecutionStatus
from durable.state import ExecutionState
from durable.storable import utf8_size

log = logging.getLogger("durable.runtime")

# An InvocationError's invocation is retried after 1, 2, 4... seconds, at most this many.
MAX_INVOCATION_BACKOFF_SECONDS = 60


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
    (a job released a little early; a timer never fires early).
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
    # When the execution became due: a start far after it means a lost wake-up or a slow hand-over.
    due = execution.wake_at.isoformat() if execution.wake_at else None
    ending = _Ending(
        store.LeasedJournal(str(execution.pk), lease.token, clock.now),
        execution,
        {"StartTimestamp": now.isoformat(), "DueTimestamp": due},
    )
    limit = conf.get("INVOCATION_DEATHS_LIMIT")

    if now >= execution.timeout_at:
        message = f"execution exceeded its timeout of {execution.timeout_seconds} seconds"
        return ending.end(ExecutionStatus.TIMED_OUT, error=ErrorObject("ExecutionTimedOut", message).to_dict())
    if execution.consecutive_deaths > 2 * limit:
        message = (
            f"{execution.consecutive_deaths} invocations in a row died before finishing "
            "(outside any step, or faster than a step could count them); the execution is failed so it "
            "cannot loop forever"
        )
        return ending.end(ExecutionStatus.FAILED, error=ErrorObject("InvocationDiedError", message).to_dict())
    try:
        function = get_function(execution.function_name)
    except UnknownFunctionError as exc:
        return ending.end(ExecutionStatus.FAILED, error=ErrorObject.from_exception(exc).to_dict())

    operations = store.load_journal(str(execution.pk), first_invocation=execution.invocation_count == 1)
    state = ExecutionState(
        str(execution.pk), operations, ending.journal, clock.now, max_result_bytes=conf.get("MAX_RESULT_BYTES")
    )
    ending.state = state
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
        raised: BaseException | None = None
        try:
            result = function.func(json.loads(execution.input), DurableContext(state))
        except (SystemExit, KeyboardInterrupt, GeneratorExit):
            raise  # the process is going away; the lease lapses and the next holder counts a death
        except BaseException as exc:  # noqa: BLE001 - every other way out is an outcome (see the table)
            raised = exc
        stopped = state.halted or raised
        if stopped is not None:
            return ending.after(stopped)
        try:
            payload = _result_payload(result, conf.get("MAX_RESULT_BYTES"))
        except ExecutionError as exc:
            return ending.after(exc)
        return ending.end(ExecutionStatus.SUCCEEDED, result=payload)


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


def _result_payload(result: Any, limit: int) -> str:
    """The handler's value as stored (JSON; non-ASCII escaped, so any text is storable)."""
    try:
        payload = json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise ExecutionError(
            f"the handler returned a value of type {type(result).__qualname__} that is not JSON: {exc}"
        ) from exc
    size = utf8_size(payload)
    if size > limit:
        raise ExecutionError(
            f"the handler returned {size} bytes once serialized; the limit is {limit} bytes "
            "(settings.DURABLE['MAX_RESULT_BYTES'])"
        )
    return payload


@dataclass
class _Ending:
    """Records how the invocation ended, in its last transaction (which releases the lease)."""

    journal: store.LeasedJournal
    execution: Execution
    invocation: dict[str, Any]
    state: ExecutionState | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def after(self, stopped: BaseException) -> InvocationOutcome:
        """The outcome for what stopped the handler (the table in the module docstring)."""
        execution_id = self.journal.execution_id
        if isinstance(stopped, SuspendExecution):
            return self.end(ExecutionStatus.RUNNING, wake_at=self.state.next_wake_at() if self.state else None)
        if isinstance(stopped, LeaseLostError):
            log.warning("invocation of %s lost its lease; stopped writing", execution_id)
            return self._unrecorded()
        if isinstance(stopped, CheckpointFailedError):
            # Nothing more can be written; the lease expires and the sweep resumes the execution.
            log.error("invocation of %s stopped: %s", execution_id, stopped)
            return self._unrecorded()
        if isinstance(stopped, CheckpointRefusedError):
            return self._refused(stopped)
        if isinstance(stopped, InvocationError):
            return self._invocation_failed(stopped)
        self.extra["failed_operations"] = failure_path(stopped)
        return self.end(ExecutionStatus.FAILED, error=ErrorObject.from_exception(stopped).to_dict())

    def _invocation_failed(self, error: InvocationError) -> InvocationOutcome:
        """The invocation failed, not the execution: run again later, within a bound."""
        failures = self.execution.failed_invocations + 1
        limit = conf.get("INVOCATION_DEATHS_LIMIT")
        if failures >= limit:
            message = (
                f"{failures} invocations in a row failed with an {type(error).__name__} (the last: {error}); "
                "the execution is failed so it cannot loop forever"
            )
            return self.end(ExecutionStatus.FAILED, error=ErrorObject(type(error).__name__, message).to_dict())
        self.invocation["Error"] = ErrorObject.from_exception(error).to_dict()
        self.extra["failed_invocations"] = failures
        delay = min(2 ** (failures - 1), MAX_INVOCATION_BACKOFF_SECONDS)
        return self.end(ExecutionStatus.RUNNING, wake_at=clock.now() + timedelta(seconds=delay))

    def _refused(self, error: CheckpointRefusedError) -> InvocationOutcome:
        """Fail the execution without the checkpoints the database refused."""
        if self.state is not None:
            self.state.pending_checkpoints()  # dropped: they hold what was refused
        log.error("invocation of %s: %s", self.journal.execution_id, error)
        return self.end(
            ExecutionStatus.FAILED, error=ErrorObject("CheckpointRefusedError", str(error)).to_dict(), refused=True
        )

    def _unrecorded(self) -> InvocationOutcome:
        count = self.state.checkpoint_count if self.state else 0
        return InvocationOutcome(self.journal.execution_id, ran=True, status=None, checkpoints=count)

    def end(
        self,
        status: ExecutionStatus,
        *,
        result: str | None = None,
        error: dict[str, Any] | None = None,
        wake_at: datetime | None = None,
        refused: bool = False,
    ) -> InvocationOutcome:
        now = clock.now()
        self.invocation["EndTimestamp"] = now.isoformat()
        history = [events.invocation_completed(self.invocation, now)]
        changes: dict[str, Any] = {"status": status, **self.extra}
        if status is ExecutionStatus.RUNNING:
            # Never later than the timeout: the invocation then ends the execution.
            changes["wake_at"] = min(wake_at, self.execution.timeout_at) if wake_at else self.execution.timeout_at
        else:
            history.append(events.execution_ended(status, error=error, has_result=result is not None, at=now))
            changes.update(result=result, error=error, ended_at=now, wake_at=None)
        checkpoints = self.state.pending_checkpoints() if self.state else []
        watched = self.state.awaited_callbacks() if self.state and status is ExecutionStatus.RUNNING else []
        try:
            if self.journal.finish(checkpoints, history, watched_callbacks=watched, **changes):
                changes["wake_at"] = clock.now()
        except LeaseLostError:
            log.warning("invocation of %s lost its lease before it could finish", self.journal.execution_id)
            return InvocationOutcome(self.journal.execution_id, ran=True, status=None)
        except CheckpointFailedError as exc:
            log.error("invocation of %s could not record its end: %s", self.journal.execution_id, exc)
            return InvocationOutcome(self.journal.execution_id, ran=True, status=None)
        except CheckpointRefusedError as exc:
            if refused:
                log.error("invocation of %s could not record its failure: %s", self.journal.execution_id, exc)
                return InvocationOutcome(self.journal.execution_id, ran=True, status=None)
            self.extra.pop("failed_operations", None)
            return self._refused(exc)
        if status is ExecutionStatus.RUNNING:
            dispatch.wake(self.journal.execution_id, changes["wake_at"])
        else:
            signals.on_commit_status_changed(
                execution_id=self.journal.execution_id,
                function_name=self.execution.function_name,
                execution_name=self.execution.execution_name,
                status=status,
                previous_status=ExecutionStatus.RUNNING,
                error=error,
                timestamp=now,
            )
        count = (self.state.checkpoint_count if self.state else 0) + 1
        return InvocationOutcome(
            self.journal.execution_id, ran=True, status=status, wake_at=changes["wake_at"], checkpoints=count
        )
