"""Signals the engine sends, always after the transaction that made them true has committed.

`execution_status_changed` is sent for every status change of an execution: RUNNING when it
starts (`previous_status` ""), its end (SUCCEEDED, FAILED, TIMED_OUT, STOPPED) whatever ended it
(its handler, a stop, the sweep, its timeout), and RUNNING again when a redrive reopens a FAILED
one. Keyword arguments:

- `execution_id` (str), `function_name` (str), `execution_name` (str)
- `status` (str, the new status) and `previous_status` (str)
- `error` (dict in the journal's error shape, or None), `timestamp` (datetime of the change)

The sender is the durable function whose execution changed (the `DurableFunction` registered
under its name in the sending process; None if none is): a receiver connected with
`sender=<the decorated function>` hears that function's executions only, and when no receiver
listens to a function's executions (and no other sink takes them) its status changes write no
event at all. One connected without a sender hears every function's. A function registered
again (`durable.execution.register`, a fixed version) is a new sender: connect to it too.

It is one sink of the event outbox (`durable.sinks`): the change and its event commit together,
and the signal is sent after the commit, normally by the process that made the change. Delivery
is AT LEAST ONCE: if that process dies first, or a receiver raises, a worker's delivery pass
sends it again later (in another process, possibly after later changes of the same execution).
Receivers must therefore be idempotent, and order news by `timestamp`, not by arrival. One that
raises is logged and does not affect the engine or the other receivers (`send_robust`), but
makes the event be sent again (to every receiver) until EVENT_MAX_ATTEMPTS.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.dispatch import Signal

from durable.execution import registered

log = logging.getLogger("durable.signals")

execution_status_changed = Signal()


def listened(function_name: str) -> bool:
    """Whether a receiver of this process hears the status changes of `function_name`'s executions."""
    return execution_status_changed.has_listeners(registered(function_name))


def send_status_changed(
    *,
    execution_id: str,
    function_name: str,
    execution_name: str,
    status: str,
    previous_status: str,
    error: dict[str, Any] | None,
    timestamp: datetime,
) -> list[tuple[Any, Any]]:
    """Send `execution_status_changed` now (the outbox's signal sink does, after the commit);
    returns what each receiver returned or raised (raising ones are logged)."""
    responses = execution_status_changed.send_robust(
        sender=registered(function_name),
        execution_id=str(execution_id),
        function_name=function_name,
        execution_name=execution_name,
        status=str(status),
        previous_status=str(previous_status),
        error=error,
        timestamp=timestamp,
    )
    for receiver, response in responses:
        if isinstance(response, Exception):
            log.error("receiver %r of execution_status_changed failed for %s: %r", receiver, execution_id, response)
    return responses
