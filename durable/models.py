"""The journal: executions, their operations, and an append-only history of events."""

from __future__ import annotations

import re
from typing import Any

from django.db import models
from django.db.models import Lookup, Q

from durable.identifier import new_execution_id

_WORD = re.compile(r"[A-Za-z][A-Za-z_]*")


class LiteralIn(Lookup):
    """`field__literal_in=(...)`: IN, its values written into the statement rather than bound.
    SQLite uses a partial index only for a query whose conditions it can see imply the index's;
    it sees through a bound value only by preparing the statement again for each new value
    (SQLite 3.40 here), and not at all on a plan made before the value was bound. The index's
    own words written out, in its order, match it at once. For the engine's constant words only:
    anything else is refused, not quoted."""

    lookup_name = "literal_in"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        lhs, params = self.process_lhs(compiler, connection)
        words = tuple(self.rhs)
        if not words or not all(isinstance(w, str) and _WORD.fullmatch(w) for w in words):
            raise ValueError(f"literal_in takes plain words only, not {words!r}")
        return f"{lhs} IN ({', '.join(repr(w) for w in words)})", tuple(params)


class ExecutionStatus(models.TextChoices):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"


# The condition of the partial index durable_exec_timeout, which its query repeats (LiteralIn).
RUNNING_ONLY = (ExecutionStatus.RUNNING.value,)


class Execution(models.Model):
    id = models.UUIDField(primary_key=True, default=new_execution_id, editable=False)
    function_name = models.CharField(max_length=200)
    execution_name = models.CharField(max_length=200)
    input = models.TextField(help_text="The input as JSON.")
    input_hash = models.CharField(max_length=64, help_text="SHA-256 of the input, for idempotent starts.")
    status = models.CharField(max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.RUNNING)
    result = models.TextField(null=True, blank=True, help_text="The handler's return value as JSON.")
    error = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    timeout_seconds = models.PositiveIntegerField()
    timeout_at = models.DateTimeField()
    wake_at = models.DateTimeField(
        null=True, blank=True, help_text="When a RUNNING execution must next be invoked; null: on a callback."
    )
    lease_owner = models.CharField(max_length=200, null=True, blank=True)
    lease_token = models.CharField(max_length=32, null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    invocation_count = models.PositiveIntegerField(default=0)
    consecutive_deaths = models.PositiveIntegerField(
        default=0, help_text="Invocations in a row that died holding the lease (reset when one ends normally)."
    )
    died_at_operation = models.CharField(max_length=64, null=True, blank=True)
    deaths_at_operation = models.PositiveIntegerField(default=0)
    failed_invocations = models.PositiveIntegerField(
        default=0, help_text="Invocations in a row that ended with an InvocationError (reset when one ends otherwise)."
    )
    failed_operations = models.JSONField(
        null=True,
        blank=True,
        help_text="The operations whose failures ended a FAILED execution, outermost first: what a redrive re-runs.",
    )
    # An execution started by another's context.invoke: the parent, and the operation that waits for it.
    # Its lookups (and the delete's SET NULL) use durable_execution_invoke_unique, which leads with it.
    parent_execution = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="child_executions", db_index=False
    )
    parent_operation_id = models.CharField(max_length=64, null=True, blank=True)
    # The W3C traceparent of the span that started it (a web request's): its invocations' parent.
    trace_parent = models.CharField(max_length=64, null=True, blank=True)
    # For people: what the execution is about (the product's document title, say), and why an
    # operator should look at it ("webhook not delivered"); "" when there is nothing to say.
    label = models.CharField(max_length=200, blank=True, default="", help_text="A human label (start_execution).")
    attention = models.CharField(
        max_length=200, blank=True, default="", help_text="Why an operator should look at it; empty: no need."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["function_name", "execution_name"], name="durable_execution_name_unique"),
            # One child per invoke operation, whoever commits first: a replay never starts a second.
            models.UniqueConstraint(
                fields=["parent_execution", "parent_operation_id"], name="durable_execution_invoke_unique"
            ),
        ]
        indexes = [
            # The sweep's queries: due wake-ups and expired leases of running executions. Partial
            # (issue 19): a row is in them only while it has a wake-up or a lease, so an execution's
            # start and end write no entry into them (a `<=` or `<` on the column implies IS NOT
            # NULL, so both databases use them): a page less per commit for each.
            models.Index(fields=["status", "wake_at"], condition=Q(wake_at__isnull=False), name="durable_exec_due"),
            models.Index(
                fields=["status", "lease_expires_at"],
                condition=Q(lease_expires_at__isnull=False),
                name="durable_exec_lease",
            ),
            # Running executions only (issue 19): an end takes its entry out and writes none.
            models.Index(
                fields=["status", "timeout_at"], condition=Q(status__in=RUNNING_ONLY), name="durable_exec_timeout"
            ),
            # The admin's list, newest first (its order ends in -pk), whole or by status or function,
            # read a page at a time instead of sorting every matching row (durable_exec_list also
            # serves every range of creation dates); and a search by a whole name. Ascending, read
            # backwards for the newest first (issue 19): a new execution's entries go to the right
            # edge, a page each, where in descending indexes they went to the left edge, which
            # SQLite's B-tree rebalances three pages at a time (2.7 to 3.2 pages a start each).
            models.Index(fields=["created_at", "id"], name="durable_exec_list"),
            models.Index(fields=["status", "created_at", "id"], name="durable_exec_list_status"),
            models.Index(fields=["function_name", "created_at", "id"], name="durable_exec_list_function"),
            models.Index(fields=["execution_name"], name="durable_exec_name"),
            # The purge's query: a function's executions that ended before its cutoff (partial:
            # a running execution is not in it, so its start writes no entry).
            models.Index(
                fields=["function_name", "ended_at"], condition=Q(ended_at__isnull=False), name="durable_exec_ended"
            ),
        ]
        permissions = [
            ("stop_execution", "Can stop an execution"),
            ("redrive_execution", "Can redrive a failed execution"),
            ("reenqueue_execution", "Can re-enqueue a stuck execution"),
            ("complete_callback", "Can complete or fail a waiting callback by hand"),
        ]

    def __str__(self) -> str:
        return f"{self.function_name} {self.execution_name} ({self.status})"


# The statuses of an operation that is still open (what an execution waits on): the condition of
# the partial index durable_op_open, which its queries repeat word for word (LiteralIn).
OPEN_STATUSES = ("STARTED", "PENDING")


class Operation(models.Model):
    """One operation of an execution; its primary key orders the journal."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: durable_operation_unique leads with it (and serves the journal's load,
    # sorted by id: issue 19 dropped the index by (execution, id), a page a step's commit).
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="operations", db_index=False)
    operation_id = models.CharField(max_length=64)
    parent_id = models.CharField(max_length=64, null=True, blank=True)
    type = models.CharField(max_length=16)
    sub_type = models.CharField(max_length=64)
    name = models.CharField(max_length=256, null=True, blank=True)
    status = models.CharField(max_length=16)
    attempt = models.PositiveIntegerField(default=0)
    result = models.TextField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    wait_until = models.DateTimeField(null=True, blank=True)
    callback_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    callback_deadline = models.DateTimeField(null=True, blank=True)
    heartbeat_deadline = models.DateTimeField(null=True, blank=True)
    heartbeat_seconds = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    max_attempts = models.PositiveIntegerField(
        null=True, blank=True, help_text="A retrying step's attempts in all, when its retry strategy says."
    )
    # A CHAINED_INVOKE operation's child execution (set when it is started; the journal's
    # upserts never write it).
    child_execution = models.ForeignKey(
        Execution, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["execution", "operation_id"], name="durable_operation_unique")]
        indexes = [
            # Partial (invokes only): a step's row is not written into it. A lookup by value
            # (`= ?`, `IN`) implies IS NOT NULL, so both databases use it.
            models.Index(
                fields=["child_execution"], condition=Q(child_execution__isnull=False), name="durable_op_child"
            ),
            # What executions wait on (the admin's "waiting for" filter, the sweep's expired
            # callbacks): the open operations of a kind, and only those (issue 19): a step that
            # succeeds at once writes no entry. Its queries say `status__literal_in=OPEN_STATUSES`.
            models.Index(
                fields=["type", "status", "execution"],
                condition=Q(status__in=OPEN_STATUSES),
                name="durable_op_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.name or self.operation_id[:12]} ({self.status})"


# The kinds of history event the operations page's charts read (durable.dashboard): the condition
# of the partial index durable_history_time_type, which their queries repeat (LiteralIn).
CHARTED_EVENTS = ("StepStarted", "StepSucceeded", "StepFailed", "ExecutionFailed", "ExecutionTimedOut")


class HistoryEvent(models.Model):
    """An append-only log entry; EventId is the event's rank within its execution."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: durable_history_order leads with it.
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="history", db_index=False)
    event_type = models.CharField(max_length=40)
    operation_id = models.CharField(max_length=64, null=True, blank=True)
    parent_id = models.CharField(max_length=64, null=True, blank=True)
    name = models.CharField(max_length=256, null=True, blank=True)
    sub_type = models.CharField(max_length=64, null=True, blank=True)
    timestamp = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True)
    # Set when the row also stands for its operation's start (StepStarted, ContextStarted: no
    # details of their own), written in the same commit just before this end: one row for the
    # two events, read back as both (`events`, durable.history.expand_rows).
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["execution", "id"], name="durable_history_order"),
            # The operations page's charts: events of a few kinds over a time window. By time
            # first (issue 19): a commit's events all go to the index's newest page, where by kind
            # first each kind had a page of its own (up to four pages a commit); and only the
            # kinds the charts read (partial: an execution's start and end write no entry).
            models.Index(
                fields=["timestamp", "event_type"],
                condition=Q(event_type__in=CHARTED_EVENTS),
                name="durable_history_time_type",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.name or ''}".strip()

    def events(self) -> list[HistoryEvent]:
        """The events this row stands for, in order: its operation's start first when the row
        holds one (`started_at`; an unsaved copy), then itself."""
        started, kind = self.started_at, held_start(self.event_type, self.started_at)
        if started is None or kind is None:
            return [self]
        start = HistoryEvent(
            execution_id=self.execution_id,
            event_type=kind,
            operation_id=self.operation_id,
            parent_id=self.parent_id,
            name=self.name,
            sub_type=self.sub_type,
            timestamp=started,
            details={},
        )
        return [start, self]


# An operation's start event with no details, by the ends one row can hold it with.
START_OF = {
    "StepSucceeded": "StepStarted",
    "StepFailed": "StepStarted",
    "ContextSucceeded": "ContextStarted",
    "ContextFailed": "ContextStarted",
}


def held_start(event_type: str, started_at: object) -> str | None:
    """The start event a history row of this type and `started_at` also stands for, if any
    (only the ends in START_OF hold one: `started_at` on any other row is ignored)."""
    return START_OF.get(event_type) if started_at is not None else None


# The fields whose partial indexes name words, for their queries to repeat (LiteralIn).
Execution._meta.get_field("status").register_lookup(LiteralIn)
Operation._meta.get_field("status").register_lookup(LiteralIn)
HistoryEvent._meta.get_field("event_type").register_lookup(LiteralIn)


class EventDeliveryStatus(models.TextChoices):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class OutboxEvent(models.Model):
    """An execution's status change (or an operation's completion), written in the transaction
    that made it; sent after the commit. No foreign key to the execution: a purge of the
    execution never waits for its events' deliveries."""

    id = models.UUIDField(primary_key=True, help_text="The event's id (EventBridge's `id`): a receiver's dedup key.")
    execution_id = models.UUIDField()
    detail_type = models.CharField(max_length=64)
    function_name = models.CharField(max_length=200)
    execution_name = models.CharField(max_length=200)
    status = models.CharField(max_length=16)
    previous_status = models.CharField(max_length=16, blank=True, default="")
    operation_id = models.CharField(max_length=64, null=True, blank=True)
    detail = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["execution_id", "created_at"], name="durable_outbox_execution")]

    def __str__(self) -> str:
        return f"{self.detail_type}: {self.function_name} {self.execution_name} {self.status}"


class EventDelivery(models.Model):
    """One event's delivery to one sink: at least once, retried with backoff until it is
    delivered or its attempts are spent (FAILED: kept, visible in the admin)."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: durable_delivery_unique leads with it.
    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    sink = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=EventDeliveryStatus.choices, default=EventDeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "sink"], name="durable_delivery_unique")]
        indexes = [
            # The delivery pass: pending rows that are due; the outbox's retention: delivered rows.
            models.Index(fields=["status", "next_attempt_at"], name="durable_delivery_due"),
            models.Index(fields=["status", "delivered_at"], name="durable_delivery_done"),
        ]
        permissions = [("retry_event_delivery", "Can retry an event's delivery now")]

    def __str__(self) -> str:
        return f"{self.sink} {self.status} ({self.attempts} attempts)"
