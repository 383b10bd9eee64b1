"""The threads of one invocation: map and parallel items run on threads of their own, while
every read and write of the journal stays on the invocation's thread.

Why: Django gives each thread its own database connection. Writes from item threads would go
through as many connections: on SQLite they would queue for its one writer lock, inside a
caller's transaction (a test's, a transactional step's) they would not see its rows, and a
transactional step's body and checkpoint would no longer share a connection. So item threads
run user code only; when they need the journal (a checkpoint, a callback's fresh state, a
time-out, a transactional step's body) they hand the work to the invocation's thread through
a `Funnel` and wait for it to be done there, on the one connection the invocation holds.

A `BatchScope` is one map or parallel; an `ItemScope` one of its items, carried by a context
variable into the item's thread (nested batches stack them). When a batch completes early its
scope closes: an item still running is orphaned, and its next operation raises
OrphanedChildException instead of writing, as the official SDK records such items (STARTED).
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from durable.exceptions import InvalidStateError, OrphanedChildException

T = TypeVar("T")

# How long a thread waits for the invocation's thread between checks that it is still alive.
_POLL_SECONDS = 1.0


@dataclass(eq=False)
class BatchScope:
    """One running map or parallel; `closed` once it completed or suspended."""

    operation_id: str
    closed: bool = False


@dataclass(eq=False)
class ItemScope:
    """One item of a batch, in its thread: what it suspended on, and whether it halted."""

    batch: BatchScope
    index: int
    operation_id: str
    suspensions: list[Any] = field(default_factory=list)
    halted: BaseException | None = None


_items: contextvars.ContextVar[tuple[ItemScope, ...]] = contextvars.ContextVar("durable_items", default=())


# Called in an item's thread when the item ends (registered by the Django side: it closes the
# database connections the item's own code opened there; this module imports no Django).
_item_end_hooks: list[Callable[[], None]] = []


def on_item_end(hook: Callable[[], None]) -> None:
    """Run `hook` in each item's thread when the item ends (once per hook)."""
    if hook not in _item_end_hooks:
        _item_end_hooks.append(hook)


def item_ended() -> None:
    """Run the item-end hooks; one that fails is skipped (the item's outcome stands)."""
    for hook in _item_end_hooks:
        with contextlib.suppress(Exception):  # cleanup must not change how the item ended
            hook()


def in_item() -> bool:
    """Whether this code runs in a batch item at all (the cheap question asked first)."""
    return bool(_items.get())


def current_item() -> ItemScope | None:
    """The innermost batch item this code runs in, if any."""
    items = _items.get()
    return items[-1] if items else None


def orphaned_item() -> ItemScope | None:
    """The outermost item around this code whose batch no longer waits for it, if any."""
    items = _items.get()
    if not items:  # outside any batch: every operation of a replay asks, so this is the fast way out
        return None
    return next((item for item in items if item.batch.closed), None)


@contextmanager
def inside(item: ItemScope) -> Iterator[None]:
    """Run the block as `item` (in its thread), within the items around it."""
    token = _items.set((*_items.get(), item))
    try:
        yield
    finally:
        _items.reset(token)


# The engine's context variables an item's work carries to the invocation's thread (its batch
# scopes, and the state's "inside a step body" mark, registered by durable.state). Only these:
# the rest of the owner's context stays its own, Django's connection above all, so the work
# runs on the invocation's connection even if the item's thread opened one of its own.
CARRIED: list[contextvars.ContextVar[Any]] = []


@dataclass(eq=False)
class Request:
    """Work an item thread hands to the invocation's thread, with the carried variables."""

    carried: list[tuple[contextvars.ContextVar[Any], Any]]
    work: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class Funnel:
    """Carries journal work from item threads to the invocation's thread (the owner).

    The owner serves requests while it waits in a batch's coordinator loop: its inbox takes
    both the requests and that batch's item events, in the order they were put.
    """

    def __init__(self) -> None:
        self.owner = threading.current_thread()
        self.lock = threading.RLock()
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def on_owner(self, work: Callable[[], T]) -> T:
        """Run `work` on the owner's thread and return what it returns (or raise what it raises).

        Code outside any batch item runs it where it is (the owner, or a thread of the user's).
        Raises OrphanedChildException if the item's batch completed meanwhile.
        """
        if threading.current_thread() is self.owner or current_item() is None:
            return work()
        with self.lock:
            orphan = orphaned_item()
            if orphan is not None:
                raise _orphaned(orphan)
            request = Request([(var, var.get()) for var in (_items, *CARRIED)], work)
            self.inbox.put(request)
        while not request.done.wait(_POLL_SECONDS):
            if not self.owner.is_alive():
                raise InvalidStateError("the invocation's thread ended while an item waited for the journal")
        if request.error is not None:
            raise request.error
        result: T = request.result
        return result

    def serve(self, request: Request) -> None:
        """Run a request on the owner's thread, in its own context with the carried variables."""
        try:
            request.result = contextvars.copy_context().run(_carried, request)
        except BaseException as exc:  # noqa: BLE001 - handed back to the item's thread
            request.error = exc
        finally:
            request.done.set()

    def close(self, batch: BatchScope) -> list[Any]:
        """Close `batch`: its items still running are orphaned. On the owner's thread, also take
        what is in the inbox: requests from orphans are refused at once (any other is served),
        and everything else is returned, in order."""
        with self.lock:
            batch.closed = True
            left: list[Any] = []
            while threading.current_thread() is self.owner:
                try:
                    entry = self.inbox.get_nowait()
                except queue.Empty:
                    break
                if isinstance(entry, Request):
                    self.serve(entry)
                else:
                    left.append(entry)
        return left


def _carried(request: Request) -> Any:
    for var, value in request.carried:
        var.set(value)
    refuse_if_orphaned()
    return request.work()


def _orphaned(item: ItemScope) -> OrphanedChildException:
    return OrphanedChildException(
        f"item {item.index} of batch {item.batch.operation_id[:12]} ran on after its batch completed; "
        "nothing more of it is recorded",
        item.operation_id,
    )


def refuse_if_orphaned() -> None:
    """Raise OrphanedChildException if this code runs in an item its batch no longer waits for."""
    orphan = orphaned_item()
    if orphan is not None:
        raise _orphaned(orphan)
