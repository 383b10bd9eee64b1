"""Invocations: take the lease, load the journal in one query, replay the handler, record the end.

How an invocation ends is decided in one place, `Invocation.after` with its table `_OUTCOMES`,
from what stopped the handler; each outcome is one method of `Invocation`:

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
| (past its time budget) | the lease keeper ends the process (in a worker) and asks for a new invocation |

Before the handler runs: past the execution's timeout, TIMED_OUT; after too many invocations in
a row died outside any step, FAILED (deaths inside a step count as that step's failed attempts).

Once an operation has suspended (or the lease is lost, or the journal cannot be written), the
invocation ends that way whatever the handler does next: it may catch BaseException and carry
on, but no operation runs after that point and what it returns or raises is ignored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from durable import client, clock, conf, dispatch, events, logcontext, metrics, outbox, tracing
from durable import lease as lease_keeper
from durable.config import Duration
from durable.context import DurableContext
from durable.errors import ErrorObject
from durable.exceptions import (
    CheckpointFailedError,
    CheckpointRefusedError,
    ExecutionError,
    ExecutionNotRunningError,
    InvocationDiedError,
    InvocationError,
    LeaseLostError,
    SuspendExecution,
    UnknownFunctionError,
    failure_path,
)
from durable.execution import get_function
from durable.models import Execution, ExecutionStatus
from durable.outbox import OutboxRecord
from durable.state import ExecutionState, waking_records
from durable.storable import utf8_size
from durable.store import Lease, NextLease, children, journal_store
from durable.store import outbox as outbox_store
from durable.store.leased import checkpoint_guard

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
    # Every log line of the invocation carries these ids (durable.logcontext).
    with logcontext.bound(execution_id=str(execution_id), invocation_id=logcontext.new_invocation_id()):
        return _run_invocation(execution_id, owner, kill_on_budget, wait_if_early)


# What runs as an invocation begins its last write, if set: the worker (durable.rq.worker) sends
# for its next job then, so that round trip to Redis overlaps the write. It may give back a
# function that names the execution of that job (None: none), called as the write's transaction
# begins: the write takes that execution's lease too (SqlJournalStore.next_lease), and the
# worker's next invocation finds it taken. Neither may raise.
ENDING: ContextVar[Callable[[], Callable[[], str | None] | None] | None] = ContextVar(
    "durable_invocation_ending", default=None
)


def _run_invocation(
    execution_id: str, owner: str | None, kill_on_budget: bool, wait_if_early: float
) -> InvocationOutcome:
    now = clock.now()
    lease = journal_store().acquire_lease(str(execution_id), owner or default_owner(), now, conf.get("LEASE_SECONDS"))
    if lease is None:
        return InvocationOutcome(str(execution_id), ran=False)
    if wait_if_early and (wake_at := lease.execution.wake_at) is not None:
        early = (wake_at - now).total_seconds()
        if 0 < early <= wait_if_early:
            # Queued early on purpose (the timer mover's lead, durable.rq.timers): everything but
            # the handler's code is done before the nap, the journal read too where the lease did
            # not read it (SQLite), so the code after the wait starts as soon as its time comes.
            if lease.journal is None:
                journal = journal_store().load_journal(
                    str(execution_id), first_invocation=lease.execution.invocation_count == 1
                )
                lease = replace(lease, journal=journal)
            time.sleep(max(0.0, (wake_at - clock.now()).total_seconds()))
            now = clock.now()
    started = time.perf_counter()
    with tracing.invocation_span(
        str(execution_id), lambda: _span_attributes(lease), lease.execution.trace_parent
    ) as ended:
        outcome = Invocation(lease, now, kill_on_budget=kill_on_budget).run()
        ended(outcome.status)
    metrics.invocation_ended(lease.execution.function_name, started, outcome.status, outcome.ran)
    return outcome


def _span_attributes(lease: Lease) -> dict[str, Any]:
    execution = lease.execution
    return {
        "durable.function.name": execution.function_name,
        "durable.execution.name": execution.execution_name,
        "durable.invocation.id": logcontext.current().get("invocation_id", ""),
        "durable.invocation.count": execution.invocation_count,
    }


class Invocation:
    """One invocation under its lease: replays the handler, then records how it ended, with one
    method per outcome (see the table in the module docstring and `_OUTCOMES`)."""

    def __init__(self, lease: Lease, now: datetime, *, kill_on_budget: bool) -> None:
        self.execution = lease.execution
        self.lease = lease
        self.execution_id = str(self.execution.pk)
        self.store = journal_store()
        self.journal = self.store.leased(self.execution_id, lease.token, clock.now)
        self.kill_on_budget = kill_on_budget
        self.now = now
        self.state: ExecutionState | None = None
        # When the execution became due: a start far after it means a lost wake-up or a slow hand-over.
        due = self.execution.wake_at.isoformat() if self.execution.wake_at else None
        self.details: dict[str, Any] = {"StartTimestamp": now.isoformat(), "DueTimestamp": due}
        self.changes: dict[str, Any] = {}  # more columns of the execution to set with the ending

    def run(self) -> InvocationOutcome:
        execution, limit = self.execution, conf.get("INVOCATION_DEATHS_LIMIT")
        if self.now >= execution.timeout_at:
            return self.timed_out()
        if execution.consecutive_deaths > 2 * limit:
            return self.died_too_often()
        if children.parent_stopped(execution):
            return self.parent_stopped()
        try:
            function = get_function(execution.function_name)
        except UnknownFunctionError as exc:
            return self.failed(exc)
        if outbox_store.sends_operation_events(execution.function_name):
            self.journal.operation_events = (execution.function_name, execution.execution_name)
        operations = self.lease.journal  # read with the lease where the database can (PostgreSQL)
        if operations is None:
            operations = self.store.load_journal(self.execution_id, first_invocation=execution.invocation_count == 1)
        metrics.resumed(execution.wake_at, waking_records(operations), self.now)
        state = self.state = ExecutionState(
            self.execution_id, operations, self.journal, clock.now, max_result_bytes=conf.get("MAX_RESULT_BYTES")
        )
        if self.lease.took_over:
            state.death_check = _death_check(execution, self.lease.token, limit)
        budget = (function.invocation_timeout or Duration(conf.get("INVOCATION_TIMEOUT"))).seconds
        keeper = lease_keeper.hold(
            self.execution_id,
            self.lease.token,
            conf.get("LEASE_SECONDS"),
            budget,
            kill=self.kill_on_budget,
            on_budget=lambda: dispatch.wake(self.execution_id, clock.now()),
        )
        with keeper:
            try:
                result = function.func(json.loads(execution.input), DurableContext(state))
            except (SystemExit, KeyboardInterrupt, GeneratorExit):
                raise  # the process is going away; the lease lapses and the next holder counts a death
            except BaseException as exc:  # noqa: BLE001 - every other way out is an outcome
                return self.after(state.halted or exc)
            if state.halted is not None:  # it swallowed what ended it, then returned
                return self.after(state.halted)
            return self.succeeded(result)

    def after(self, stopped: BaseException) -> InvocationOutcome:
        """The outcome for what stopped the handler: the first matching row of `_OUTCOMES`."""
        for kind, outcome in _OUTCOMES:
            if isinstance(stopped, kind):
                return outcome(self, stopped)
        return self.failed(stopped)

    # The outcomes.

    def succeeded(self, result: Any) -> InvocationOutcome:
        try:
            payload = _result_payload(result, conf.get("MAX_RESULT_BYTES"))
        except ExecutionError as exc:
            return self.failed(exc)
        return self.end(ExecutionStatus.SUCCEEDED, result=payload)

    def failed(self, error: BaseException) -> InvocationOutcome:
        """The handler raised: the execution fails, with the path a redrive will re-run."""
        self.changes["failed_operations"] = failure_path(error)
        return self.end(ExecutionStatus.FAILED, error=ErrorObject.from_exception(error).to_dict())

    def suspended(self, _: BaseException) -> InvocationOutcome:
        return self.end(ExecutionStatus.RUNNING, wake_at=self.state.next_wake_at() if self.state else None)

    def lease_lost(self, _: BaseException) -> InvocationOutcome:
        log.warning("invocation of %s lost its lease; stopped writing", self.execution_id)
        metrics.lease_lost()
        return self._unrecorded()

    def unreachable(self, error: BaseException) -> InvocationOutcome:
        # Nothing more can be written; the lease expires and the sweep resumes the execution.
        log.error("invocation of %s stopped: %s", self.execution_id, error)
        return self._unrecorded()

    def refused(self, error: BaseException) -> InvocationOutcome:
        """The database refused a write's values: fail without the checkpoints it refused."""
        if self.state is not None:
            self.state.pending_checkpoints()  # dropped: they hold what was refused
        self.changes.pop("failed_operations", None)
        log.error("invocation of %s: %s", self.execution_id, error)
        failure = ErrorObject("CheckpointRefusedError", str(error)).to_dict()
        return self.end(ExecutionStatus.FAILED, error=failure, refused=True)

    def invocation_failed(self, error: BaseException) -> InvocationOutcome:
        """The invocation failed, not the execution: run again after a backoff, within a bound."""
        failures = self.execution.failed_invocations + 1
        if failures >= conf.get("INVOCATION_DEATHS_LIMIT"):
            message = (
                f"{failures} invocations in a row failed with an {type(error).__name__} (the last: {error}); "
                "the execution is failed so it cannot loop forever"
            )
            return self.end(ExecutionStatus.FAILED, error=ErrorObject(type(error).__name__, message).to_dict())
        self.details["Error"] = ErrorObject.from_exception(error).to_dict()
        self.changes["failed_invocations"] = failures
        delay = min(2 ** (failures - 1), MAX_INVOCATION_BACKOFF_SECONDS)
        return self.end(ExecutionStatus.RUNNING, wake_at=clock.now() + timedelta(seconds=delay))

    def timed_out(self) -> InvocationOutcome:
        message = f"execution exceeded its timeout of {self.execution.timeout_seconds} seconds"
        return self.end(ExecutionStatus.TIMED_OUT, error=ErrorObject("ExecutionTimedOut", message).to_dict())

    def died_too_often(self) -> InvocationOutcome:
        message = (
            f"{self.execution.consecutive_deaths} invocations in a row died before finishing "
            "(outside any step, or faster than a step could count them); the execution is failed so it "
            "cannot loop forever"
        )
        return self.end(ExecutionStatus.FAILED, error=ErrorObject("InvocationDiedError", message).to_dict())

    def parent_stopped(self) -> InvocationOutcome:
        """The execution that invoked this one was stopped (and its stop could not reach this one
        at once): it stops too, with its own children."""
        reason = ErrorObject("ExecutionStopped", "its parent execution was stopped").to_dict()
        with contextlib.suppress(ExecutionNotRunningError):  # stopped meanwhile by the cascade itself
            client.stop_execution(self.execution_id, error=reason)
        return InvocationOutcome(self.execution_id, ran=True, status=ExecutionStatus.STOPPED)

    def _stop_cancelled_invokes(self, operation_ids: list[str]) -> None:
        """Stop the executions that a race's losing branches invoked (their operations are
        cancelled now; what they would return is no longer awaited)."""
        reason = ErrorObject("ExecutionStopped", "the race that invoked it was won by another branch").to_dict()
        for child_id in children.invoked_by(self.execution_id, operation_ids):
            with contextlib.suppress(ExecutionNotRunningError):
                client.stop_execution(child_id, error=reason)

    def _unrecorded(self) -> InvocationOutcome:
        count = self.state.checkpoint_count if self.state else 0
        return InvocationOutcome(self.execution_id, ran=True, status=None, checkpoints=count)

    def status_change(self, status: ExecutionStatus, at: datetime, error: dict[str, Any] | None) -> OutboxRecord:
        return outbox.status_change(
            execution_id=self.execution_id,
            function_name=self.execution.function_name,
            execution_name=self.execution.execution_name,
            status=status,
            previous_status=ExecutionStatus.RUNNING,
            started_at=self.execution.created_at,
            at=at,
            error=error,
        )

    def next_lease(self, next_execution: Callable[[], str | None] | None) -> Callable[[], NextLease | None] | None:
        """For the last write: the lease of the execution `next_execution` names, to take with it."""
        if next_execution is None:
            return None
        store = self.store
        return lambda: store.next_lease(next_execution(), default_owner(), clock.now(), conf.get("LEASE_SECONDS"))

    def end(
        self,
        status: ExecutionStatus,
        *,
        result: str | None = None,
        error: dict[str, Any] | None = None,
        wake_at: datetime | None = None,
        refused: bool = False,
    ) -> InvocationOutcome:
        """The invocation's last transaction: its checkpoints, its events, the execution's new
        state, the lease released; then the wake-up or the status signal."""
        next_execution = ending() if (ending := ENDING.get()) is not None else None
        now = clock.now()
        self.details["EndTimestamp"] = now.isoformat()
        history = [events.invocation_completed(self.details, now)]
        changes: dict[str, Any] = {"status": status, **self.changes}
        if status is ExecutionStatus.RUNNING:
            # Never later than the timeout: the invocation then ends the execution.
            changes["wake_at"] = min(wake_at, self.execution.timeout_at) if wake_at else self.execution.timeout_at
        else:
            history.append(events.execution_ended(status, error=error, has_result=result is not None, at=now))
            changes.update(result=result, error=error, ended_at=now, wake_at=None)
        checkpoints = self.state.pending_checkpoints() if self.state else []
        watched = self.state.awaited_callbacks() if self.state and status is ExecutionStatus.RUNNING else []
        parent: str | None = None
        # The end's event, written with it (sent after the commit: durable.sinks).
        ended_event = [] if status is ExecutionStatus.RUNNING else [self.status_change(status, now, error)]
        try:
            if status is ExecutionStatus.RUNNING or self.execution.parent_execution_id is None:
                if self.journal.finish(
                    checkpoints,
                    history,
                    watched_callbacks=watched,
                    outbox=ended_event,
                    next_lease=self.next_lease(next_execution),
                    **changes,
                ):
                    changes["wake_at"] = clock.now()
            else:
                # A child's end completes its parent's invoke in the same transaction.
                with checkpoint_guard(self.execution_id), transaction.atomic():
                    self.journal.finish(checkpoints, history, watched_callbacks=watched, outbox=ended_event, **changes)
                    ended = replace_execution(self.execution, status=status, result=result, error=error)
                    parent = children.complete_parent_operation(ended, now)
        except LeaseLostError:
            log.warning("invocation of %s lost its lease before it could finish", self.execution_id)
            metrics.lease_lost()
            return InvocationOutcome(self.execution_id, ran=True, status=None)
        except CheckpointFailedError as exc:
            log.error("invocation of %s could not record its end: %s", self.execution_id, exc)
            return InvocationOutcome(self.execution_id, ran=True, status=None)
        except CheckpointRefusedError as exc:
            if refused:
                log.error("invocation of %s could not record its failure: %s", self.execution_id, exc)
                return InvocationOutcome(self.execution_id, ran=True, status=None)
            return self.refused(exc)
        if self.state is not None and self.state.cancelled_invokes:
            self._stop_cancelled_invokes(self.state.cancelled_invokes)
        wake_ups = [(child, now, 0) for child in self.journal.started_children]
        if parent is not None:
            wake_ups.append((parent, now, 0))
        dispatch.wake_many(wake_ups)
        if status is ExecutionStatus.RUNNING:
            dispatch.wake(self.execution_id, changes["wake_at"])
        count = (self.state.checkpoint_count if self.state else 0) + 1
        return InvocationOutcome(
            self.execution_id, ran=True, status=status, wake_at=changes["wake_at"], checkpoints=count
        )


# What stopped the handler -> how the invocation ends (first match; anything else: `failed`).
_OUTCOMES: list[tuple[type[BaseException], Callable[[Invocation, BaseException], InvocationOutcome]]] = [
    (SuspendExecution, Invocation.suspended),
    (LeaseLostError, Invocation.lease_lost),
    (CheckpointFailedError, Invocation.unreachable),
    (CheckpointRefusedError, Invocation.refused),
    (InvocationError, Invocation.invocation_failed),
]


def replace_execution(execution: Execution, **values: Any) -> Execution:
    """A copy of an execution's row with some fields changed (what it became in this transaction)."""
    copy = Execution.from_db(
        None,
        [f.attname for f in Execution._meta.concrete_fields],
        [getattr(execution, f.attname) for f in Execution._meta.concrete_fields],
    )
    for key, value in values.items():
        setattr(copy, key, value)
    return copy


def _death_check(execution: Execution, token: str, limit: int) -> Callable[[str, str | None], Exception | None]:
    """At the first step this invocation runs for real: count the deaths at that step."""

    def check(operation_id: str, name: str | None) -> Exception | None:
        same = execution.died_at_operation == operation_id
        count = execution.deaths_at_operation + 1 if same else 1
        journal_store().record_death(str(execution.pk), token, operation_id, count, clock.now())
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
