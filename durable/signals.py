"""Signals the engine sends, always after the transaction that made them true has committed.

`execution_status_changed` is sent when an execution ends (SUCCEEDED, FAILED, TIMED_OUT,
STOPPED), whatever ended it (its handler, a stop, the sweep, its timeout), and when a redrive
sets a FAILED execution RUNNING again. Keyword arguments:

- `execution_id` (str), `function_name` (str), `execution_name` (str)
- `status` (str, the new status) and `previous_status` (str)
- `error` (dict in the journal's error shape, or None), `timestamp` (datetime of the change)

Receivers run in the process that made the change; one that raises is logged and does not
affect the engine or the other receivers (the signal is sent with `send_robust`). Delivery is
at most once: a process that dies between its commit and the signal never sends it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.dispatch import Signal

log = logging.getLogger("durable.signals")

execution_status_changed = Signal()


def on_commit_status_changed(
    *,
    execution_id: str,
    function_name: str,
    execution_name: str,
    status: str,
    previous_status: str,
    error: dict[str, Any] | None,
    timestamp: datetime,
) -> None:
    """Send `execution_status_changed` once the current transaction commits (at once outside one)."""
    if not execution_status_changed.receivers:
        return
    kwargs = {
        "execution_id": str(execution_id),
        "function_name": function_name,
        "execution_name": execution_name,
        "status": str(status),
        "previous_status": str(previous_status),
        "error": error,
        "timestamp": timestamp,
    }

    def send() -> None:
        for receiver, response in execution_status_changed.send_robust(sender=None, **kwargs):
            if isinstance(response, Exception):
                log.error("receiver %r of execution_status_changed failed for %s: %r", receiver, execution_id, response)

    transaction.on_commit(send)
