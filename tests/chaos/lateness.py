"""How late executions started: from each invocation's InvocationCompleted event.

An invocation records when it took its lease (StartTimestamp) and when its execution had become
due (DueTimestamp, the execution's wake_at at that moment). An invocation that died (killed, or
cut off by a database restart) records nothing; the invocation that takes over sees the same
DueTimestamp, so its lateness includes the dead invocation's run and the wait for its lease to
lapse: exactly the hand-over a fault costs. An execution's dead invocations are those that took
its lease (invocation_count) but recorded no InvocationCompleted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from durable.models import Execution, HistoryEvent


@dataclass(frozen=True)
class Late:
    seconds: float
    execution_id: str
    due: datetime
    start: datetime
    deaths: int  # invocations of this execution that died, at any point of its life


def lateness(execution_ids: list[str]) -> list[Late]:
    """Every completed invocation of these executions that had a due time, latest first."""
    events = HistoryEvent.objects.filter(execution_id__in=execution_ids, event_type="InvocationCompleted")
    rows = list(events.values_list("execution_id", "details"))
    completed = Counter(execution_id for execution_id, _ in rows)
    invocations = dict(Execution.objects.filter(pk__in=execution_ids).values_list("pk", "invocation_count"))
    found = []
    for execution_id, details in rows:
        if not details.get("DueTimestamp"):
            continue
        due = datetime.fromisoformat(details["DueTimestamp"])
        start = datetime.fromisoformat(details["StartTimestamp"])
        deaths = invocations[execution_id] - completed[execution_id]
        found.append(Late((start - due).total_seconds(), str(execution_id), due, start, deaths))
    return sorted(found, key=lambda late: late.seconds, reverse=True)
