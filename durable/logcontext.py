"""Which execution, invocation, operation and attempt a log line belongs to, on every line.

The runtime binds the ids in a context variable around an invocation and around each step
attempt (`bound`); `ContextFilter`, put on a handler, copies them onto every record that passes
it, whoever logged it: the user's step logger, the engine's own loggers (durable.runtime,
durable.worker, durable.lease), a library the step calls. Context variables follow the code
into map and parallel items (their threads start in a copy of the invocation's context) and
into the lease keeper's thread, and never leak from one invocation into the next.

The keys are `execution_id`, `invocation_id`, `operation_id`, `operation_name` and `attempt`;
a key is absent while unknown (outside an invocation, outside a step). This module imports no
Django: the replay core uses it.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from durable import threads

_EMPTY: Mapping[str, Any] = {}
_ids: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("durable_log_ids", default=_EMPTY)
# Journal work an item hands to the invocation's thread logs with the item's step ids.
threads.CARRIED.append(_ids)


def current() -> Mapping[str, Any]:
    """The ids bound here (an empty mapping outside any invocation)."""
    return _ids.get()


class bound:  # noqa: N801 - used as a function: `with bound(...)`
    """Add `ids` to every log record made inside the block (None values are left out). A class
    rather than a generator: it runs around every step attempt, so it is kept cheap."""

    __slots__ = ("ids", "token")

    def __init__(self, **ids: Any) -> None:
        self.ids = ids

    def __enter__(self) -> None:
        ids = dict(_ids.get())
        for key, value in self.ids.items():
            if value is not None:
                ids[key] = value
        self.token = _ids.set(ids)

    def __exit__(self, *_: object) -> None:
        _ids.reset(self.token)


def new_invocation_id() -> str:
    """A fresh invocation id: unique across workers and restarts, short enough to grep."""
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (never over a value the record already has, such
    as an `extra` the caller passed); lets every record through. Put it on a handler, so records
    of every logger that reach the handler get the ids."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _ids.get().items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True
