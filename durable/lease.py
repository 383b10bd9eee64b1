"""Keeps an invocation's lease alive while it runs, and enforces its time budget.

A thread renews the lease every third of its length. Past the invocation's budget it expires
the lease (so the next holder counts this invocation as dead), asks for a new invocation now,
and, when `kill` is set (a forked work-horse), ends the process: a step that overruns is stopped
and the execution resumes from its last checkpoint.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, close_old_connections, connection

from durable import clock, store

log = logging.getLogger("durable.lease")

BUDGET_EXIT_CODE = 75


class LeaseKeeper:
    def __init__(
        self,
        execution_id: str,
        token: str,
        ttl_seconds: float,
        budget_seconds: float,
        *,
        kill: bool,
        on_budget: Callable[[], None] | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.token = token
        self.ttl = ttl_seconds
        self.deadline = time.monotonic() + budget_seconds
        self.budget = budget_seconds
        self.kill = kill
        self.on_budget = on_budget
        self.lost = False
        self.overran = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{execution_id[:8]}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = max(0.2, self.ttl / 3)
        try:
            while not self._stop.wait(min(interval, max(0.05, self.deadline - time.monotonic()))):
                if time.monotonic() >= self.deadline:
                    self._overrun()
                    return
                try:
                    renewed = store.renew_lease(self.execution_id, self.token, clock.now(), self.ttl)
                except DatabaseError as exc:
                    # Try again next beat; if the database stays away, the lease simply expires.
                    log.warning("execution %s: could not renew the lease (%s)", self.execution_id, exc)
                    close_old_connections()
                    connection.close()
                    continue
                if not renewed:
                    self.lost = True
                    log.warning("execution %s: lease lost while running", self.execution_id)
                    return
        finally:
            connection.close()

    def _overrun(self) -> None:
        self.overran = True
        log.error("execution %s: invocation ran past its %ss budget; stopping it", self.execution_id, int(self.budget))
        try:
            store.expire_lease(self.execution_id, self.token, clock.now())
        except DatabaseError:
            log.exception("execution %s: could not expire the lease; it will lapse", self.execution_id)
        if self.on_budget is not None:
            self.on_budget()
        if self.kill:
            logging.shutdown()
            os._exit(BUDGET_EXIT_CODE)
