"""Keeps invocations' leases alive while they run, and enforces their time budgets.

One daemon thread per process (started on first use, and again after a fork) renews every held
lease each third of its length. Past an invocation's budget it expires that lease (so the next
holder counts the invocation as dead), asks for a new invocation now, and, when the process is
disposable (a supervised worker or a forked work-horse), ends the process: a step that overruns
is stopped and the execution resumes from its last checkpoint.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, close_old_connections, connection

from durable import clock, logcontext
from durable.store import journal_store

log = logging.getLogger("durable.lease")

BUDGET_EXIT_CODE = 75
TICK_SECONDS = 0.2


@dataclass
class HeldLease:
    execution_id: str
    token: str
    ttl: float
    budget: float
    kill: bool
    on_budget: Callable[[], None] | None
    deadline: float = 0.0
    # The invocation's log ids: the keeper's lines about this lease carry them.
    log_ids: Mapping[str, Any] = field(default_factory=logcontext.current)
    renew_at: float = 0.0
    lost: bool = False
    overran: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class _Keeper:
    def __init__(self) -> None:
        self.leases: dict[int, HeldLease] = {}
        self.lock = threading.Lock()
        self.pid = 0
        self.thread: threading.Thread | None = None

    def ensure_running(self) -> None:
        if self.pid != os.getpid() or self.thread is None or not self.thread.is_alive():
            self.pid = os.getpid()
            self.leases = {}  # a forked child inherits none of its parent's invocations
            self.thread = threading.Thread(target=self._run, name="durable-lease-keeper", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(TICK_SECONDS)
            now = time.monotonic()
            with self.lock:
                held = list(self.leases.values())
            for lease in held:
                if lease.done.is_set():
                    continue
                with logcontext.bound(**lease.log_ids):
                    if now >= lease.deadline:
                        self._overrun(lease)
                    elif now >= lease.renew_at:
                        self._renew(lease, now)

    def _renew(self, lease: HeldLease, now: float) -> None:
        try:
            renewed = journal_store().renew_lease(lease.execution_id, lease.token, clock.now(), lease.ttl)
        except DatabaseError as exc:
            # Try again next beat; if the database stays away, the lease simply expires.
            log.warning("execution %s: could not renew the lease (%s)", lease.execution_id, exc)
            close_old_connections()
            connection.close()
            return
        lease.renew_at = now + lease.ttl / 3
        if not renewed:
            lease.lost = True
            lease.done.set()
            log.warning("execution %s: lease lost while running", lease.execution_id)

    def _overrun(self, lease: HeldLease) -> None:
        lease.overran = True
        lease.done.set()
        log.error(
            "execution %s: invocation ran past its %ss budget; stopping it", lease.execution_id, int(lease.budget)
        )
        try:
            journal_store().expire_lease(lease.execution_id, lease.token, clock.now())
        except DatabaseError:
            log.exception("execution %s: could not expire the lease; it will lapse", lease.execution_id)
        if lease.on_budget is not None:
            lease.on_budget()
        if lease.kill:
            logging.shutdown()
            os._exit(BUDGET_EXIT_CODE)


_keeper = _Keeper()


@contextmanager
def hold(
    execution_id: str,
    token: str,
    ttl_seconds: float,
    budget_seconds: float,
    *,
    kill: bool,
    on_budget: Callable[[], None] | None = None,
) -> Iterator[HeldLease]:
    """Keep this lease renewed, and the invocation within its budget, inside the block."""
    now = time.monotonic()
    lease = HeldLease(
        execution_id,
        token,
        ttl_seconds,
        budget_seconds,
        kill,
        on_budget,
        deadline=now + budget_seconds,
        renew_at=now + max(TICK_SECONDS, ttl_seconds / 3),
    )
    with _keeper.lock:
        _keeper.ensure_running()
        _keeper.leases[id(lease)] = lease
    try:
        yield lease
    finally:
        lease.done.set()
        with _keeper.lock:
            _keeper.leases.pop(id(lease), None)
