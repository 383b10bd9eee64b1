"""The event outbox's SQL: events written in the transaction of the change they tell of, one
delivery row per (event, sink), and the delivery pass's claims, outcomes and clean-up.

`write` (or `Prepared(...).write`, its rows made before the transaction) runs inside the
caller's transaction (each status write of the store calls it there); `Prepared.statements`
gives the same inserts as statements for PostgreSQL's one-query journal writes.
Either way the deliveries are tried once the transaction commits (`durable.sinks`), and the
workers' pass retries what that did not deliver: at least once, whatever dies when.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from durable import conf, metrics
from durable.exceptions import UnknownFunctionError
from durable.execution import get_function
from durable.models import EventDelivery, EventDeliveryStatus, Execution, OutboxEvent
from durable.outbox import STATUS_CHANGE, OutboxRecord, operation_change
from durable.state import OperationRecord
from durable.store import sql

_EVENT_COLUMNS = (
    "id",
    "execution_id",
    "detail_type",
    "function_name",
    "execution_name",
    "status",
    "previous_status",
    "operation_id",
    "detail",
    "created_at",
)
_DELIVERY_COLUMNS = ("event_id", "sink", "status", "attempts", "next_attempt_at", "last_error")


def _qn(name: str) -> str:
    return str(connection.ops.quote_name(name))


@cache
def _insert(table: str, columns: tuple[str, ...], rows: int, vendor: str) -> str:
    group = f"({', '.join(['%s'] * len(columns))})"
    return f"INSERT INTO {_qn(table)} ({', '.join(_qn(c) for c in columns)}) VALUES {', '.join([group] * rows)}"


def _uuid(value: Any, native: bool) -> Any:
    """A UUID (or its text) as UUIDField.get_db_prep_value gives it to the database, less its
    layers (an execution's id as the engine writes it, `str(UUID)`, without parsing it again)."""
    if not native and value.__class__ is str and len(value) == 36 and value.islower():
        return value.replace("-", "")
    value = value if value.__class__ is uuid.UUID else uuid.UUID(str(value))
    return value if native else value.hex


def _rows(
    records: Sequence[OutboxRecord],
) -> tuple[list[list[Any]], list[list[Any]], list[Any], list[tuple[OutboxRecord, list[str]]]]:
    """The parameters of the events' and their deliveries' rows (one per sink that takes it), the
    configured sinks they were chosen from, and each event written with the names of the sinks
    its deliveries were written for (the first attempts after the commit make those)."""
    from durable import sinks

    found = sinks.configured()
    ops = connection.ops
    native = connection.features.has_native_uuid_field
    grace: timedelta | None = None  # read once a record has a sink to go to
    events, deliveries, written = [], [], []
    names_of: dict[tuple[bool, str], list[str]] = {}
    for record in records:
        status_change = record.detail_type == STATUS_CHANGE
        function_name = record.function_name
        key = (status_change, function_name)
        if key not in names_of:
            names_of[key] = sinks.sink_names(status_change=status_change, function_name=function_name, sinks=found)
        names = names_of[key]
        if not names:
            continue
        if grace is None:
            grace = timedelta(seconds=float(conf.get("EVENT_AFTER_COMMIT_GRACE")))
        pk = _uuid(record.id, native)
        at = ops.adapt_datetimefield_value(record.created_at)
        events.append(
            [
                pk,
                _uuid(record.execution_id, native),
                record.detail_type,
                record.function_name,
                record.execution_name,
                record.status,
                record.previous_status,
                record.operation_id,
                ops.adapt_json_value(record.detail, None),  # JSONField's get_db_prep_save (no encoder)
                at,
            ]
        )
        # The committing process tries first; the workers' pass only once it had time to.
        due = ops.adapt_datetimefield_value(record.created_at + grace)
        deliveries += [[pk, name, EventDeliveryStatus.PENDING.value, 0, due, ""] for name in names]
        written.append((record, names))
    return events, deliveries, found, written


def count_ends(records: Sequence[OutboxRecord]) -> None:
    """Count the executions these records end, once their transaction commits (whether or not
    any sink takes the events: the metric does not depend on who listens)."""
    ended = [(r.function_name, r.status) for r in records if r.detail_type == STATUS_CHANGE and r.status != "RUNNING"]
    if ended:
        transaction.on_commit(lambda: _count(ended))


def _count(ended: list[tuple[str, str]]) -> None:
    for name, status in ended:
        metrics.execution_ended(name, status)


def _after_commit(written: list[tuple[OutboxRecord, list[str]]], found: list[Any]) -> None:
    from durable import sinks

    transaction.on_commit(lambda: sinks.deliver_after_commit(written, found))


def write(records: Sequence[OutboxRecord]) -> None:
    """Insert the events and their deliveries in the caller's transaction; try them after it commits."""
    Prepared(records).write()


class Prepared:
    """An outbox write whose rows are made before the caller's transaction begins: on SQLite the
    rows' Python work (sinks, field conversions) then runs outside the writers' lock. Either
    `write` in the caller's transaction, or `statements` in a query of the caller's and then
    `after_commit`."""

    def __init__(self, records: Sequence[OutboxRecord]) -> None:
        self.records = records
        self.events, self.deliveries, self.sinks, self.written = _rows(records) if records else ([], [], [], [])

    def write(self) -> None:
        """In the caller's transaction: the inserts; the end count and the deliveries' first try
        once it commits."""
        if not self.records:
            return  # most journal writes (a step's) tell of no status change
        count_ends(self.records)
        if not self.events:
            return
        with sql.cursor() as cursor:
            cursor.executemany(_insert(OutboxEvent._meta.db_table, _EVENT_COLUMNS, 1, connection.vendor), self.events)
            cursor.executemany(
                _insert(EventDelivery._meta.db_table, _DELIVERY_COLUMNS, 1, connection.vendor), self.deliveries
            )
        _after_commit(self.written, self.sinks)

    def statements(self) -> tuple[list[str], list[Any]]:
        """The same inserts as statements and parameters, to run in a query of the caller's."""
        if not self.events:
            return [], []
        queries = [
            _insert(OutboxEvent._meta.db_table, _EVENT_COLUMNS, len(self.events), connection.vendor),
            _insert(EventDelivery._meta.db_table, _DELIVERY_COLUMNS, len(self.deliveries), connection.vendor),
        ]
        return queries, [value for row in self.events + self.deliveries for value in row]

    def after_commit(self) -> None:
        """Once the caller's query of `statements` commits: count the executions these records
        end, and try the deliveries of the events it wrote."""
        count_ends(self.records)
        if self.events:
            _after_commit(self.written, self.sinks)


def sends_operation_events(function_name: str) -> bool:
    """Whether executions of this function send an event per completed operation (its
    `@durable_execution(operation_events=...)`, else settings.DURABLE["OPERATION_EVENTS"])."""
    try:
        chosen = get_function(function_name).operation_events
    except UnknownFunctionError:
        chosen = None
    return bool(conf.get("OPERATION_EVENTS")) if chosen is None else chosen


def write_operation_events(execution_id: str, records: Sequence[OperationRecord], at: datetime) -> None:
    """In the caller's transaction: events for operations completed outside an invocation (a
    callback sent or timed out, an invoked child's outcome), if the execution's function sends them."""
    if not records:
        return
    names = Execution.objects.filter(pk=execution_id).values_list("function_name", "execution_name").first()
    if names is not None:
        write(operation_events(execution_id, names, records, at))


def operation_events(
    execution_id: str, names: tuple[str, str], records: Sequence[OperationRecord], at: datetime
) -> list[OutboxRecord]:
    """The events of `write_operation_events` for an execution whose (function name, execution
    name) the caller has read: none if its function does not send them."""
    function_name, execution_name = names
    if not records or not sends_operation_events(function_name):
        return []
    return [
        operation_change(
            execution_id=str(execution_id),
            function_name=function_name,
            execution_name=execution_name,
            operation=record,
            at=record.ended_at or at,
        )
        for record in records
    ]


# The delivery pass.


def _one_write() -> AbstractContextManager[Any]:
    """Around a single-statement write: on SQLite a transaction, so it queues for the writers'
    lock (durable.backends.sqlite3) instead of sleeping in SQLite's busy handler; elsewhere
    nothing (one round trip, autocommit)."""
    return transaction.atomic() if connection.vendor == "sqlite" else nullcontext()


@dataclass(frozen=True)
class Claim:
    """One attempt this process owns: the delivery's row was updated to count it (or, right
    after the commit that wrote it, `delivery_id` is None: the committing process's own first
    attempt, which the pass leaves alone for EVENT_AFTER_COMMIT_GRACE)."""

    delivery_id: int | None
    sink: str
    attempt: int
    event: OutboxEvent | OutboxRecord


def first_attempt(record: OutboxRecord, sink: str) -> Claim:
    """The committing process's attempt of a delivery it just wrote (no query: it has the event,
    whose fields the sinks read as the stored event's)."""
    return Claim(None, sink, 1, record)


def _row(claim: Claim) -> QuerySet[EventDelivery]:
    if claim.delivery_id is not None:
        return EventDelivery.objects.filter(pk=claim.delivery_id)
    # Unless the pass took it meanwhile (then its outcome is the pass's to record).
    return EventDelivery.objects.filter(event_id=claim.event.pk, sink=claim.sink, attempts=0)


def claim(
    now: datetime,
    next_attempt_at: Callable[[int], datetime],
    *,
    event_ids: Sequence[Any] | None = None,
    skip_sinks: Collection[str] = (),
) -> Claim | None:
    """Take the oldest due delivery (of these events, if given; not to `skip_sinks`) for one
    attempt: its attempts counted and its next try moved to `next_attempt_at(attempt)` in one short
    transaction, so no other process takes it meanwhile (PostgreSQL skips rows another pass is
    claiming). None if nothing is due."""
    due = EventDelivery.objects.filter(status=EventDeliveryStatus.PENDING, next_attempt_at__lte=now)
    if event_ids is not None:
        due = due.filter(event_id__in=list(event_ids))
    if skip_sinks:
        due = due.exclude(sink__in=list(skip_sinks))
    if not due.exists():
        return None  # most passes: a plain read, without a transaction (or SQLite's writers' lock)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True)
        row = due.order_by("next_attempt_at", "id").values_list("pk", "sink", "attempts").first()
        if row is None:
            return None
        pk, sink, attempts = row
        # Conditional on the count read: on SQLite (no row locks) a second claimer writes nothing.
        taken = EventDelivery.objects.filter(pk=pk, status=EventDeliveryStatus.PENDING, attempts=attempts).update(
            attempts=attempts + 1, next_attempt_at=next_attempt_at(attempts + 1)
        )
        if not taken:
            return None
        event = OutboxEvent.objects.get(deliveries__pk=pk)
    return Claim(pk, sink, attempts + 1, event)


def delivered(claim: Claim, now: datetime) -> None:
    with _one_write():
        _row(claim).filter(status=EventDeliveryStatus.PENDING).update(
            status=EventDeliveryStatus.DELIVERED,
            delivered_at=now,
            last_error="",
            next_attempt_at=None,
            attempts=claim.attempt,
        )


def delivered_first_attempts(claims: Sequence[Claim], now: datetime) -> None:
    """Record these first attempts (made right after the commit) as delivered, in one UPDATE;
    one the pass took meanwhile is the pass's to record."""
    if not claims:
        return
    # One condition per sink (a handful), not per event: a worker records dozens at once.
    events_by_sink: dict[str, list[Any]] = {}
    for claim in claims:
        events_by_sink.setdefault(claim.sink, []).append(claim.event.pk)
    which = Q()
    for sink, event_ids in events_by_sink.items():
        which |= Q(sink=sink, event_id__in=event_ids)
    # attempts=0 alone says PENDING (every outcome recorded counts its attempt; an operator's
    # retry resets both): a condition on status too would lead SQLite to the status index, a
    # scan of every pending delivery, instead of the (event, sink) one.
    with _one_write():
        EventDelivery.objects.filter(which, attempts=0).update(
            status=EventDeliveryStatus.DELIVERED, delivered_at=now, last_error="", next_attempt_at=None, attempts=1
        )


def failed(claim: Claim, error: str, *, final: bool, next_attempt_at: datetime) -> None:
    """Record a failed attempt; `final`: no attempt is left (FAILED, kept for the admin)."""
    changes: dict[str, Any] = {"last_error": error[:2000], "attempts": claim.attempt}
    if final:
        changes.update(status=EventDeliveryStatus.FAILED, next_attempt_at=None)
    elif claim.delivery_id is None:
        changes["next_attempt_at"] = next_attempt_at  # (a claim set it already)
    with _one_write():
        _row(claim).filter(status=EventDeliveryStatus.PENDING).update(**changes)


def retry_now(delivery_ids: Sequence[int], now: datetime) -> int:
    """Make these deliveries (FAILED ones included) due now with their attempts reset: an
    operator's retry. Delivered ones are left alone. Returns how many."""
    with _one_write():
        return (
            EventDelivery.objects.filter(pk__in=list(delivery_ids))
            .exclude(status=EventDeliveryStatus.DELIVERED)
            .update(status=EventDeliveryStatus.PENDING, attempts=0, next_attempt_at=now)
        )


def purge_delivered(before: datetime, limit: int) -> int:
    """Delete up to `limit` events all of whose deliveries were delivered before `before`
    (their deliveries with them). Returns how many events."""
    undelivered = EventDelivery.objects.filter(event_id=OuterRef("event_id")).exclude(
        status=EventDeliveryStatus.DELIVERED
    )
    ids = list(
        EventDelivery.objects.filter(status=EventDeliveryStatus.DELIVERED, delivered_at__lt=before)
        .exclude(Exists(undelivered))
        .values_list("event_id", flat=True)
        .distinct()[:limit]
    )
    if not ids:
        return 0
    with transaction.atomic():
        EventDelivery.objects.filter(event_id__in=ids).delete()
        count, _ = OutboxEvent.objects.filter(pk__in=ids).delete()
    return count


def backoff(attempt: int, initial: float, longest: float) -> timedelta:
    """The wait after failed attempt number `attempt` (1, 2...): initial x 2^(attempt-1), capped."""
    return timedelta(seconds=min(longest, initial * 2 ** max(0, attempt - 1)))


def event_ids(delivery_ids: Sequence[int]) -> list[Any]:
    return list(EventDelivery.objects.filter(pk__in=list(delivery_ids)).values_list("event_id", flat=True).distinct())


def sinks_of(delivery_ids: Sequence[int]) -> set[str]:
    return set(EventDelivery.objects.filter(pk__in=list(delivery_ids)).values_list("sink", flat=True))
