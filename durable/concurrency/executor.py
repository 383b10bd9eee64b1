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
- An item that suspends on a timer (a wait, a retry's delay) while others run goes on in the
  same invocation once the timer has passed, as the official SDK resumes it in-process; if
  every item in flight is suspended first, the batch suspends until the earliest timer.

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
from datetime import datetime
from typing import Any, Generic, TypeVar

from durable.batch_config import BatchItemStatus, CompletionConfig, CompletionDecision, CompletionItemStatus
from durable.concurrency.models import (
    BatchItem,
    BatchResult,
    Branch,
    BranchEvent,
    BranchEventKind,
    BranchStatus,
    CompletionPolicy,
    Executable,
)
from durable.errors import ErrorObject
from durable.exceptions import DurableOperationError, ExecutionError, OrphanedChildException, SuspendExecution
from durable.state import ExecutionState
from durable.threads import BatchScope, ItemScope, Request, inside, item_ended

C = TypeVar("C")
R = TypeVar("R")

# Threads per batch at most: a bound on threads, not on items in flight (suspended items hold none).
MAX_THREADS = 32


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
        # Suspended items that a timer will move, by index: when (see `_due`).
        self.timers: dict[int, datetime] = {}

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
                    self.in_flight += 1
                    self._start(branch, pool, scope, events)
                if ended:
                    decision = self._decide()
                    continue
                # Items whose timers came due while others ran go on now (in index order).
                for branch in self._due():
                    self._start(branch, pool, scope, events)
                if self.running == 0:
                    self._suspend(scope)
                try:
                    entry = events.get(timeout=self._until_next_due())
                except queue.Empty:
                    continue  # a suspended item's timer came due
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

    def _start(
        self, branch: Branch[C, R], pool: ThreadPoolExecutor, scope: BatchScope, events: queue.SimpleQueue[Any]
    ) -> None:
        """Run an item (again, for one whose timer came due) on a thread of the pool."""
        branch.status, branch.suspensions = BranchStatus.RUNNING, ()
        self.timers.pop(branch.executable.index, None)
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        context = contextvars.copy_context()
        pool.submit(context.run, self._work, branch.executable, scope, events)

    def _due(self) -> list[Branch[C, R]]:
        """Suspended items that can move without outside help now (their timer has passed),
        in index order."""
        if not self.timers:
            return []
        now = self.state.now()
        return [self.branches[index] for index, at in sorted(self.timers.items()) if at <= now]

    def _until_next_due(self) -> float | None:
        """Seconds until the first suspended item's timer (None: no item waits on a timer)."""
        if not self.timers:
            return None
        return max(0.0, (min(self.timers.values()) - self.state.now()).total_seconds()) + 0.001

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
            times = [s.wake_at for s in event.suspensions if s.wake_at is not None]
            if times:
                self.timers[event.index] = min(times)
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
            item_ended()
            events.put(event)
