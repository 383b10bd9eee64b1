"""Wake-ups: how an execution that is due gets an invocation.

The backend is `settings.DURABLE["DISPATCHER"]`, a dotted path to `f(execution_id, when)`
(default `durable.rq.dispatch`, RQ through django-rq); a backend may also offer
`f.many([(execution_id, when, generation), ...])` for batches. With None configured, or inside
`paused()` (the test runner, which drives invocations itself), nothing is enqueued. Dispatch
always happens after the transaction that made it necessary commits, so a rolled-back
transaction leaves no wake-up behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from django.db import transaction
from django.utils.module_loading import import_string

from durable import conf

_paused = 0


@contextmanager
def paused() -> Iterator[None]:
    """Dispatch nothing inside the block (a test runner drives its invocations itself)."""
    global _paused
    _paused += 1
    try:
        yield
    finally:
        _paused -= 1


def _backend() -> Callable[..., None] | None:
    path = conf.get("DISPATCHER")
    return import_string(path) if path and not _paused else None


def wake(execution_id: str, when: datetime, generation: int = 0) -> None:
    """Ask for an invocation at `when` now (no transaction to wait for).

    `generation` > 0 re-dispatches a long-overdue wake-up under a new job id.
    """
    wake_many([(execution_id, when, generation)])


def wake_many(wake_ups: list[tuple[str, datetime, int]]) -> None:
    """`wake` for many executions: (execution id, when, generation) each; one call to the backend
    if it takes batches."""
    backend = _backend()
    if backend is None or not wake_ups:
        return
    many = getattr(backend, "many", None)
    if many is not None:
        many(wake_ups)
        return
    for execution_id, when, generation in wake_ups:
        if generation:
            backend(execution_id, when, generation)
        else:
            backend(execution_id, when)


def on_commit_wake(execution_id: str, when: datetime) -> None:
    """Ask for an invocation of `execution_id` at `when`, once the current transaction commits."""
    backend = _backend()
    if backend is not None:
        transaction.on_commit(lambda: backend(execution_id, when))
