"""The coordinator of a map or parallel: starts items in index order on threads, at most
`max_concurrency` in flight, applies the completion policy to what they report, and suspends
the batch when every item in flight is suspended.

One coordinator per batch, on the thread that called map or parallel (for the outermost batch,
the invocation's thread). Items run on a pool of threads of the batch's own and report to the
coordinator through a queue; only the coordinator changes the batch's state. On the
invocation's thread the queue is the `Funnel`'s inbox, so while it waits for items the
coordinator also serves their journal reads and writes (see `durable.threads`).

- An item already ended in the journal is not run again: the coordinator takes its recorded
  result (or error) on the spot, without a thread.
- A suspended item keeps its slot (as the official SDK's do): a slot frees only when an item
  ends. When no item is running and none can start, the batch suspends on what its items
  suspended on; the next invocation replays the batch and only items that can move run on.
- When the policy completes the batch, items not started never start; items still running are
  orphaned (their next operation raises OrphanedChildException, nothing more of them is
  recorded) and the result reports them STARTED, as the official SDK records them.
- An item that suspends on a timer while others run stays suspended until the batch suspends
  (the official SDK resumes it in-process): the journal is the same, an invocation later.

Every loop here is bounded: each item started reports exactly once (a try/finally in its
thread), and the coordinator starts each item at most once per invocation.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

from durable.batch_config import BatchItemStatus, CompletionConfig, CompletionDecision, CompletionItemStatus
from durable.concurrency.models import BatchItem, BatchResult, CompletionPolicy, Executable
from durable.errors import ErrorObject
from durable.exceptions import DurableOperationError, ExecutionError, OrphanedChildException, SuspendExecution
from durable.state import ExecutionState, Suspension
from durable.threads import BatchScope, ItemScope, Request, inside

C = TypeVar("C")
R = TypeVar("R")

# Threads per batch at most: a bound on threads, not on items in flight (suspended items hold none).
MAX_THREADS = 32


class BranchStatus(Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    FAILED = "failed"


class BranchEventKind(Enum):
    COMPLETED = "completed"
    FAILED = "failed"
    SUSPENDED = "suspended"
    ORPHANED = "orphaned"
    FATAL = "fatal"


@dataclass(frozen=True)
class BranchEvent:
    """What an item's thread reports once, when its run ends."""

    batch: BatchScope
    index: int
    kind: BranchEventKind
    result: Any = None
    error: BaseException | None = None
    suspensions: tuple[Suspension, ...] = ()


@dataclass
class Branch(Generic[C, R]):
    """One item as its coordinator sees it."""

    executable: Executable[C]
    status: BranchStatus = BranchStatus.PENDING
    result: R | None = None
    error: ErrorObject | None = None
    suspensions: tuple[Suspension, ...] = field(default_factory=tuple)

    def item(self) -> BatchItem[R] | None:
        if self.status is BranchStatus.COMPLETED:
            return BatchItem(self.executable.index, BatchItemStatus.SUCCEEDED, self.result)
        if self.status is BranchStatus.FAILED:
            return BatchItem(self.executable.index, BatchItemStatus.FAILED, error=self.error)
        if self.status is BranchStatus.PENDING:
            return None  # never started: not in the result
        return BatchItem(self.executable.index, BatchItemStatus.STARTED)


def branch_error(error: BaseException) -> ErrorObject:
    """A failed item's error: the type of what escaped the item (not of the wrapper)."""
    if isinstance(error, DurableOperationError):
        error_type = error.error_type or type(error).__name__
        return ErrorObject(error_type, error.message or "", error.data, error.stack_trace or [])
    return ErrorObject.from_exception(error)


class ConcurrentExecutor(Generic[C, R]):
    """Runs one batch's items; see the module docstring.

    `run_item(executable)` runs an item in its child context (on an item's thread);
    `replayed(executable)` returns the item's recorded end if the journal has one, else None;
    `item_id(index)` is the operation id of an item's child context.
    """

    def __init__(
        self,
        state: ExecutionState,
        operation_id: str,
        executables: list[Executable[C]],
        max_concurrency: int | None,
        completion_config: CompletionConfig | None,
        *,
        run_item: Callable[[Executable[C]], R],
        replayed: Callable[[Executable[C]], BatchItem[R] | None],
        item_id: Callable[[int], str],
    ) -> None:
        self.state = state
        self.operation_id = operation_id
        self.executables = executables
        self.slots = max_concurrency or len(executables)
        self.policy = CompletionPolicy.from_config(len(executables), completion_config)
        self.run_item = run_item
        self.replayed = replayed
        self.item_id = item_id
        self.branches: list[Branch[C, R]] = [Branch(e) for e in executables]
        self.succeeded = 0
        self.failed = 0
        self.running = 0
        self.in_flight = 0
        # The highest number of items running user code at once in this invocation (for tests
        # and benchmarks: max_concurrency bounds it).
        self.peak_running = 0

    def execute(self) -> BatchResult[R]:
        """Run until the policy completes the batch (returns its result) or every item in
        flight is suspended (raises SuspendExecution). Raises what ends the invocation (a lost
        lease, NonDeterministicExecutionError...) as soon as an item meets it."""
        if not self.executables:
            return BatchResult([], self.policy.reason(0, 0))
        funnel = self.state.funnel
        scope = BatchScope(self.operation_id)
        on_owner = threading.current_thread() is funnel.owner
        events: queue.SimpleQueue[Any] = funnel.inbox if on_owner else queue.SimpleQueue()
        pending = deque(self.branches)
        pool = ThreadPoolExecutor(max_workers=min(self.slots, MAX_THREADS), thread_name_prefix="durable-item")
        decision = self._decide()
        try:
            while not self.policy.is_complete(self.succeeded, self.failed, decision) and self.policy.should_continue(
                self.failed
            ):
                ended = False
                while pending and self.in_flight < self.slots:
                    branch = pending.popleft()
                    recorded = self.replayed(branch.executable)
                    if recorded is not None:
                        self._ended(branch, recorded)
                        ended = True
                        break  # the policy may be satisfied already: ask it again first
                    branch.status = BranchStatus.RUNNING
                    self.in_flight += 1
                    self.running += 1
                    self.peak_running = max(self.peak_running, self.running)
                    context = contextvars.copy_context()
                    pool.submit(context.run, self._work, branch.executable, scope, events)
                if ended:
                    decision = self._decide()
                    continue
                if self.running == 0:
                    self._suspend(scope)
                entry = events.get()
                if isinstance(entry, Request):
                    funnel.serve(entry)
                    continue
                if entry.batch is not scope:
                    continue  # a late report of an item of an earlier batch
                if entry.kind is BranchEventKind.ORPHANED:
                    break  # an enclosing batch completed: so does this one, unrecorded
                self._apply(entry)
                decision = self._decide()
        finally:
            left = funnel.close(scope)
            pool.shutdown(wait=False, cancel_futures=True)
        reason = self.policy.reason(self.succeeded, self.failed, decision)
        # Items that ended just as the batch completed: their end is recorded, so report it.
        while not on_owner:
            try:
                left.append(events.get_nowait())
            except queue.Empty:
                break
        for entry in left:
            if isinstance(entry, BranchEvent) and entry.batch is scope and entry.kind is not BranchEventKind.SUSPENDED:
                self._apply(entry)
        return BatchResult([item for item in (b.item() for b in self.branches) if item is not None], reason)

    def _decide(self) -> CompletionDecision | None:
        if self.policy.should_complete is None:
            return None
        return self.policy.evaluate(self.succeeded, self.failed, self._snapshot())

    def _snapshot(self) -> tuple[CompletionItemStatus, ...]:
        statuses = {
            BranchStatus.PENDING: None,
            BranchStatus.COMPLETED: BatchItemStatus.SUCCEEDED,
            BranchStatus.FAILED: BatchItemStatus.FAILED,
        }
        return tuple(
            CompletionItemStatus(b.executable.index, b.executable.name, statuses.get(b.status, BatchItemStatus.STARTED))
            for b in self.branches
        )

    def _ended(self, branch: Branch[C, R], recorded: BatchItem[R]) -> None:
        if recorded.status is BatchItemStatus.SUCCEEDED:
            branch.status, branch.result = BranchStatus.COMPLETED, recorded.result
            self.succeeded += 1
        else:
            branch.status, branch.error = BranchStatus.FAILED, recorded.error
            self.failed += 1

    def _apply(self, event: BranchEvent) -> None:
        branch = self.branches[event.index]
        live = (BranchStatus.RUNNING, BranchStatus.SUSPENDED)
        if event.kind is BranchEventKind.ORPHANED or branch.status not in live:
            return
        if event.kind is BranchEventKind.FATAL:
            assert event.error is not None
            raise event.error
        was_running = branch.status is BranchStatus.RUNNING
        if event.kind is BranchEventKind.SUSPENDED:
            branch.status, branch.suspensions = BranchStatus.SUSPENDED, event.suspensions
        elif event.kind is BranchEventKind.COMPLETED:
            branch.status, branch.result = BranchStatus.COMPLETED, event.result
            self.succeeded += 1
            self.in_flight -= 1
        elif event.kind is BranchEventKind.FAILED:
            assert event.error is not None
            branch.status, branch.error = BranchStatus.FAILED, branch_error(event.error)
            self.failed += 1
            self.in_flight -= 1
        if was_running:
            self.running -= 1

    def _suspend(self, scope: BatchScope) -> None:
        suspended = [b for b in self.branches if b.status is BranchStatus.SUSPENDED]
        suspensions = [s for b in suspended for s in b.suspensions]
        message = f"all {len(suspended)} items in flight of batch {self.operation_id[:12]} are suspended"
        self.state.suspend_on(suspensions, message)

    def _work(self, executable: Executable[C], scope: BatchScope, events: queue.SimpleQueue[Any]) -> None:
        """An item's thread: run it, then report how it ended, exactly once."""
        item = ItemScope(scope, executable.index, self.item_id(executable.index))
        event = BranchEvent(scope, executable.index, BranchEventKind.FATAL, error=RuntimeError("item did not report"))
        try:
            with inside(item):
                result = self.run_item(executable)
            event = BranchEvent(scope, executable.index, BranchEventKind.COMPLETED, result=result)
        except SuspendExecution:
            event = BranchEvent(scope, executable.index, BranchEventKind.SUSPENDED, suspensions=tuple(item.suspensions))
        except OrphanedChildException:
            event = BranchEvent(scope, executable.index, BranchEventKind.ORPHANED)
        except Exception as exc:  # noqa: BLE001 - reported, not swallowed
            # run_item records an item's own failure as its context's; what escapes as an
            # Exception is that failure, unless it ends the execution (ExecutionError).
            kind = BranchEventKind.FATAL if isinstance(exc, ExecutionError) else BranchEventKind.FAILED
            event = BranchEvent(scope, executable.index, kind, error=exc)
        except BaseException as exc:  # noqa: BLE001 - a lost lease, an unwritable journal: the invocation's end
            event = BranchEvent(scope, executable.index, BranchEventKind.FATAL, error=exc)
        finally:
            events.put(event)
