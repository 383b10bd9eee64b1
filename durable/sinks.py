"""Where the outbox's events go: the Django signal, signed webhooks, Amazon EventBridge.

Each event has one delivery row per sink (`durable.store.outbox`). Right after the commit that
wrote it, the process that committed tries each delivery once (short timeouts; a sink that just
failed in this process is left to the pass for a while, so a sink that is down does not slow
every commit); it has the event in memory, so a delivery costs one UPDATE (a worker records
several commits' deliveries in one: `hold_marks`). The workers' pass
(`deliver_due`, run after each sweep) leaves a new delivery to that process for
EVENT_AFTER_COMMIT_GRACE seconds, then retries what is due with bounded exponential backoff,
one attempt at a time, and gives a sink up for the rest of a pass at its first retryable failure.
After EVENT_MAX_ATTEMPTS a delivery is FAILED and stays, for the admin to see (and retry).
Nothing here raises into the engine: an execution's outcome never depends on a sink.

Delivery is at least once: a receiver may see an event twice (a process that dies between the
send and the row's update; an operator's retry). The event's `id` is the same each time.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from durable import clock, conf, metrics, signals, webhooks
from durable.models import OutboxEvent
from durable.outbox import OutboxRecord, envelope
from durable.store import outbox as store

log = logging.getLogger("durable.sinks")

SIGNAL = "signal"
TYPES = ("webhook", "eventbridge")


@dataclass(frozen=True)
class Sink:
    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


# An event as a sink reads it: stored (the pass's claims) or just written (the first attempt).
Event = OutboxEvent | OutboxRecord
# The events a commit wrote, each with the names of the sinks its deliveries were written for.
Written = Sequence[tuple[OutboxRecord, Sequence[str]]]

# The last settings `configured` read and what it made of them: every write of an event reads
# them, and they rarely change (a copy is compared, so a list changed in place counts).
_configured: tuple[tuple[Any, ...], list[Sink]] | None = None


def configured() -> list[Sink]:
    """The signal, then EVENT_SINKS, then the sinks the simple variables name. Raises
    ImproperlyConfigured (unknown type, a webhook without url, two sinks with one name)."""
    global _configured
    key = (conf.get("EVENT_SINKS") or [], conf.get("EVENT_WEBHOOK_URL"), conf.get("EVENTBRIDGE_BUS"))
    last = _configured
    if last is None or last[0] != key:
        last = _configured = (copy.deepcopy(key), _configured_from(*key))
    return list(last[1])


def _configured_from(sink_configs: list[dict[str, Any]], url: str, bus: str) -> list[Sink]:
    configs = [dict(c) for c in sink_configs]
    if url:
        configs.append({"type": "webhook", "name": "webhook", "url": url})
    if bus:
        configs.append({"type": "eventbridge", "name": "eventbridge", "event_bus_name": bus})
    found = [Sink(SIGNAL, SIGNAL)]
    for config in configs:
        kind = config.get("type")
        if kind not in TYPES:
            raise ImproperlyConfigured(f"DURABLE['EVENT_SINKS']: unknown sink type {kind!r} (one of {TYPES})")
        if kind == "webhook" and not config.get("url"):
            raise ImproperlyConfigured("DURABLE['EVENT_SINKS']: a webhook sink needs a url")
        name = str(config.get("name") or kind)
        if any(sink.name == name for sink in found):
            raise ImproperlyConfigured(f"DURABLE['EVENT_SINKS']: two sinks are named {name!r}; name them")
        found.append(Sink(name, str(kind), config))
    return found


def sink_names(*, status_change: bool, function_name: str, sinks: list[Sink] | None = None) -> list[str]:
    """The sinks an event of `function_name`'s execution goes to (of `sinks`, default
    `configured()`): the signal takes execution status changes, when it has receivers for that
    function's executions (every process of a project connects the same ones, when its apps are
    ready). An event with no sink to go to is not written: nobody listening costs nothing."""
    listened = status_change and signals.listened(function_name)
    return [sink.name for sink in (configured() if sinks is None else sinks) if sink.type != SIGNAL or listened]


def _delivered(sink_name: str, ok: bool) -> None:
    """Where every delivery attempt's outcome is known (one place for a metric to count it)."""
    log.debug("delivery to %s %s", sink_name, "succeeded" if ok else "failed")
    metrics.sink_delivery(sink_name, ok)


# Sending one event to one sink. Each raises webhooks.DeliveryError (retry) or
# webhooks.RefusedError / webhooks.UnsafeURLError (do not).


def _send_signal(event: Event) -> None:
    detail = event.detail
    responses = signals.send_status_changed(
        execution_id=str(event.execution_id),
        function_name=event.function_name,
        execution_name=event.execution_name,
        status=event.status,
        previous_status=event.previous_status,
        error=detail.get("error"),
        timestamp=event.created_at,
    )
    broken = [repr(response) for _, response in responses if isinstance(response, Exception)]
    if broken:
        raise webhooks.DeliveryError(f"{len(broken)} receiver(s) raised: {'; '.join(broken)}"[:2000])


def _envelope(event: Event, sink: Sink) -> dict[str, Any]:
    return envelope(
        event_id=str(event.pk),
        detail_type=event.detail_type,
        source=str(sink.options.get("source") or conf.get("EVENT_SOURCE")),
        created_at=event.created_at,
        detail=event.detail,
    )


def webhook_policy() -> webhooks.Policy:
    return webhooks.Policy(
        allow_http=bool(conf.get("EVENT_WEBHOOK_ALLOW_HTTP")),
        allow_private_addresses=bool(conf.get("EVENT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES")),
        timeout=float(conf.get("EVENT_DELIVERY_TIMEOUT")),
        ca_file=str(conf.get("EVENT_WEBHOOK_CA_FILE") or ""),
        label="the event webhook's url",
    )


def webhook_secret(sink: Sink) -> str:
    """The sink's signing secret: the variable its `secret_env` names, else EVENT_WEBHOOK_SECRET."""
    variable = sink.options.get("secret_env")
    return conf.environment_secret(str(variable)) if variable else str(conf.get("EVENT_WEBHOOK_SECRET") or "")


def _send_webhook(event: Event, sink: Sink) -> None:
    secret = webhook_secret(sink)
    if not secret:
        raise webhooks.RefusedError(
            f"the webhook sink {sink.name!r} has no signing secret (DURABLE_EVENT_WEBHOOK_SECRET)"
        )
    webhooks.deliver(
        str(sink.options["url"]),
        _envelope(event, sink),
        secret=secret,
        event=event.detail_type,
        delivery_id=str(event.pk),
        policy=webhook_policy(),
    )


_clients: dict[tuple[str, str, str], Any] = {}


def eventbridge_client(sink: Sink) -> Any:
    """The sink's boto3 EventBridge client, made once per process (no retries of its own: the
    outbox retries; short timeouts)."""
    region = str(sink.options.get("region") or "")
    endpoint = str(sink.options.get("endpoint_url") or "")
    key = (sink.name, region, endpoint)
    if key not in _clients:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        timeout = float(conf.get("EVENT_DELIVERY_TIMEOUT"))
        config = Config(retries={"max_attempts": 1}, connect_timeout=timeout, read_timeout=timeout)
        _clients[key] = boto3.session.Session().client(
            "events", region_name=region or None, endpoint_url=endpoint or None, config=config
        )
    return _clients[key]


def eventbridge_entry(event: Event, sink: Sink) -> dict[str, Any]:
    """The put_events entry of an event (its detail as EventBridge's targets receive it)."""
    wrapped = _envelope(event, sink)
    return {
        "Source": wrapped["source"],
        "DetailType": event.detail_type,
        "Detail": json.dumps(event.detail, sort_keys=True, separators=(",", ":")),
        "EventBusName": str(sink.options.get("event_bus_name") or "default"),
        "Time": event.created_at,
        "Resources": wrapped["resources"],
    }


def _send_eventbridge(event: Event, sink: Sink) -> None:
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    try:
        response = eventbridge_client(sink).put_events(Entries=[eventbridge_entry(event, sink)])
    except (BotoCoreError, ClientError) as exc:
        raise webhooks.DeliveryError(f"put_events failed: {exc}") from None
    if response.get("FailedEntryCount"):
        entry = (response.get("Entries") or [{}])[0]
        raise webhooks.DeliveryError(
            f"put_events refused the entry: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}"
        )


def _send(event: Event, sink: Sink) -> None:
    if sink.type == SIGNAL:
        _send_signal(event)
    elif sink.type == "webhook":
        _send_webhook(event, sink)
    else:
        _send_eventbridge(event, sink)


# Attempts.


def _attempt(claim: store.Claim, sinks: dict[str, Sink], delivered: list[store.Claim] | None = None) -> bool:
    """One attempt of a claimed delivery, its outcome recorded (a success appended to
    `delivered` instead, if given, to record many in one statement). Returns whether it was
    delivered or given up for good (False: retry later)."""
    sink = sinks.get(claim.sink)
    try:
        if sink is None:
            raise webhooks.RefusedError(f"no sink named {claim.sink!r} is configured any more")
        _send(claim.event, sink)
    except (webhooks.RefusedError, webhooks.UnsafeURLError) as exc:
        store.failed(claim, f"{type(exc).__name__}: {exc}", final=True, next_attempt_at=clock.now())
        _delivered(claim.sink, False)
        log.error("event %s to %s refused for good: %s", claim.event.pk, claim.sink, exc)
        return True
    except Exception as exc:  # noqa: BLE001 - any other failure of a sink is worth a retry
        final = claim.attempt >= int(conf.get("EVENT_MAX_ATTEMPTS"))
        store.failed(claim, f"{type(exc).__name__}: {exc}", final=final, next_attempt_at=_next_attempt_at(1))
        _delivered(claim.sink, False)
        log.log(
            logging.ERROR if final else logging.WARNING,
            "event %s to %s: attempt %d failed%s: %s",
            claim.event.pk,
            claim.sink,
            claim.attempt,
            " (the last)" if final else "",
            exc,
        )
        return final
    if delivered is None:
        store.delivered(claim, clock.now())
    else:
        delivered.append(claim)
    _delivered(claim.sink, True)
    return True


def _next_attempt_at(attempt: int) -> datetime:
    """When attempt number `attempt` is retried if it fails."""
    initial = float(conf.get("EVENT_RETRY_INITIAL_SECONDS"))
    return clock.now() + store.backoff(attempt, initial, float(conf.get("EVENT_RETRY_MAX_SECONDS")))


# Sinks that just failed in this process: the attempt after a commit skips them until then
# (monotonic time), leaving their deliveries to the workers' pass.
_cooling: dict[str, float] = {}


def _cool(sink_name: str) -> None:
    if sink_name != SIGNAL:  # a receiver that raised is not a sink that is down
        _cooling[sink_name] = time.monotonic() + max(1.0, float(conf.get("EVENT_RETRY_INITIAL_SECONDS")))


# Delivery marks held back to be recorded several at once: one UPDATE for many commits instead
# of one after each, which on SQLite was one more turn at the single writer per execution (see
# the README's "Against DBOS"). Every process has a flusher thread, started at its first held
# mark, that records them once due (during a long job too), and flushes them at exit; the
# engine's in-process worker also flushes them itself between jobs (after a job when due, before
# it waits for work, when it stops: `hold_marks`), so its flusher rarely finds any. A mark lost with its process
# leaves its delivery PENDING, so the pass delivers it again after the grace: at least once, as
# ever. Marks are held for at most half of EVENT_AFTER_COMMIT_GRACE, so the pass does not take a
# delivery whose mark is only late.
MARK_BATCH = 64
MARK_SECONDS = 1.0
_held: list[store.Claim] = []
_held_since = 0.0  # monotonic time of the oldest held mark
_holding = False  # True: this process's worker loop flushes too
# A map's or parallel's branches commit from threads of their own: one list, taken whole.
_held_lock = threading.Lock()
_marks_held = threading.Condition(_held_lock)
_flusher: threading.Thread | None = None


def hold_marks(hold: bool) -> None:
    """Hold this process's delivery marks for `flush_marks` (True only where something calls it)."""
    global _holding
    _holding = hold
    if not hold:
        flush_marks()


def _hold_seconds() -> float:
    return min(MARK_SECONDS, float(conf.get("EVENT_AFTER_COMMIT_GRACE")) / 2)


def flush_marks(*, due_only: bool = False) -> None:
    """Record the held marks in one UPDATE (`due_only`: only once MARK_BATCH are held or the
    oldest was held long enough). Never raises: a mark not recorded means a second delivery."""
    with _held_lock:
        if not _held or (due_only and len(_held) < MARK_BATCH and time.monotonic() - _held_since < _hold_seconds()):
            return
        claims = _held[:]
        _held.clear()
    try:
        store.delivered_first_attempts(claims, clock.now())
    except Exception:  # the pass sends them again: at least once
        log.exception(
            "events %s: could not record their delivery; the workers' pass will resend",
            sorted({str(c.event.pk) for c in claims}),
        )


def _due_in() -> float | None:
    """Seconds until the held marks or deliveries are due (at most 0: now), None if none is
    held. Called under _held_lock."""
    now = time.monotonic()
    due = [_held_since + _hold_seconds() - now] if _held else []
    if _deliveries:
        due.append(_deliveries_since + _delivery_hold_seconds() - now)
    return min(due) if due else None


def _flush_when_due() -> None:
    """The flusher thread: waits while nothing is held; makes the held deliveries and records
    the held marks once they are due (during a long job). It has database connections of its
    own (Django's are per thread), closed after each flush."""
    while True:
        with _held_lock:
            while (due_in := _due_in()) is None or due_in > 0:
                # Woken by the first mark or delivery held; otherwise it looks again at most
                # every second (the time a mark is held may change: MARK_SECONDS, the grace).
                _marks_held.wait(None if due_in is None else min(due_in, 1.0))
        deliver_held(due_only=True)
        flush_marks(due_only=True)
        with contextlib.suppress(Exception):
            connections.close_all()  # this thread's own


def _start_flusher() -> None:
    """Called under _held_lock."""
    global _flusher
    if _flusher is None or not _flusher.is_alive():
        _flusher = threading.Thread(target=_flush_when_due, name="durable-event-marks", daemon=True)
        _flusher.start()


def _first_held() -> None:
    """A first mark or delivery is held (called under _held_lock): the flusher waits for it, not
    for each one."""
    _start_flusher()
    _marks_held.notify()


def _forget_after_fork() -> None:
    """A forked child starts with no flusher and no lock held; the parent records its own marks
    (the child's copy of them would be a second UPDATE that changes nothing) and makes its own
    held deliveries (the child's would be second deliveries)."""
    global _held_lock, _marks_held, _flusher
    _held_lock = threading.Lock()
    _marks_held = threading.Condition(_held_lock)
    _flusher = None
    _held.clear()
    _deliveries.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(flush_marks)


def _record(delivered: list[store.Claim], records: Sequence[OutboxRecord]) -> None:
    global _held_since
    if delivered and _hold_seconds() > 0:
        with _held_lock:
            if not _held:
                _held_since = time.monotonic()
                _first_held()
            _held.extend(delivered)
        flush_marks(due_only=True)
        return
    try:
        store.delivered_first_attempts(delivered, clock.now())
    except Exception:  # the pass sends them again: at least once
        log.exception(
            "events %s: could not record their delivery; the workers' pass will resend", [r.id for r in records]
        )


# After-commit deliveries held in a worker (while `hold_deliveries`) until its queue is empty, for at
# most DELIVERY_HOLD_SECONDS: a burst of wake-ups (timers due together) then runs each
# invocation without the sinks' work of the ones before it, which was a tenth of a resume's
# time with the product's receiver. The worker makes them when it finds no job waiting, and
# after a job once the oldest is due; the flusher thread makes overdue ones during a long job.
# A held delivery lost with its process is made by the workers' pass after the grace, as ever;
# none is held longer than a mark (half the grace), so the pass never takes one only held back.
DELIVERY_HOLD_SECONDS = 0.05
# Each: the events a commit wrote, and the sinks configured then.
_deliveries: list[tuple[Written, list[Sink]]] = []
_deliveries_since = 0.0  # monotonic time of the oldest held delivery
_holding_deliveries = False  # True: this process's worker loop makes them (deliver_held)


def hold_deliveries(hold: bool) -> None:
    """Hold this process's after-commit deliveries for `deliver_held` (True only where something
    calls it: the engine's worker)."""
    global _holding_deliveries
    _holding_deliveries = hold
    if not hold:
        deliver_held()


def _delivery_hold_seconds() -> float:
    """Never longer than a mark is held: the pass must not take a delivery only held back."""
    return min(DELIVERY_HOLD_SECONDS, _hold_seconds())


def deliver_held(*, due_only: bool = False) -> None:
    """Make the held after-commit deliveries (`due_only`: only once the oldest was held
    DELIVERY_HOLD_SECONDS). Never raises."""
    if not _deliveries:
        return  # most calls (after each job): nothing held, no lock taken (one held meanwhile waits for the next)
    with _held_lock:
        if not _deliveries or (due_only and time.monotonic() - _deliveries_since < _delivery_hold_seconds()):
            return
        held = _deliveries[:]
        _deliveries.clear()
    for written, found in held:
        _deliver(written, found)


def deliver_after_commit(written: Written, found: list[Sink]) -> None:
    """Try each delivery of these just-committed events once, in this process (one UPDATE
    records the successes of one or several commits, see `hold_marks`; one more each failure);
    in a worker, once its queue is empty (within DELIVERY_HOLD_SECONDS: `deliver_held`).
    `written`: each event with the names of the sinks its deliveries were written for, of
    `found`, the configured sinks then. Never raises."""
    global _deliveries_since
    if _holding_deliveries and _delivery_hold_seconds() > 0:
        with _held_lock:
            if not _deliveries:
                _deliveries_since = time.monotonic()
                _first_held()
            _deliveries.append((written, found))
        return
    _deliver(written, found)


def _deliver(written: Written, found: list[Sink]) -> None:
    delivered: list[store.Claim] = []
    records = [record for record, _ in written]
    try:
        sinks = {sink.name: sink for sink in found}
        skip = {name for name, until in _cooling.items() if until > time.monotonic()} if _cooling else set()
        for record, names in written:
            for name in names:
                if name not in skip and not _attempt(store.first_attempt(record, name), sinks, delivered):
                    skip.add(name)  # the pass retries; this process leaves it alone for a while
                    _cool(name)
    except Exception:
        log.exception("events %s: delivery after commit failed; the workers' pass will retry", [r.id for r in records])
    _record(delivered, records)


def deliver_now(event_ids: Sequence[Any]) -> None:
    """Try the due deliveries of these events once each, in this process. Never raises."""
    try:
        sinks = {sink.name: sink for sink in configured()}
        skip: set[str] = set()
        while (claim := store.claim(clock.now(), _next_attempt_at, event_ids=event_ids, skip_sinks=skip)) is not None:
            if not _attempt(claim, sinks):
                skip.add(claim.sink)
                _cool(claim.sink)
    except Exception:
        log.exception("events %s: delivery failed; the workers' pass will retry", list(event_ids))


# The outbox's retention runs in this process's pass at most once per PURGE_EVERY (by the
# engine's clock; again at once if the clock went back): its query cost 1.7 ms of the 7 ms an idle
# sweep took on PostgreSQL, every second, for events that age by days.
PURGE_EVERY = timedelta(seconds=60)
_last_purge: datetime | None = None


@dataclass
class DeliveryReport:
    attempted: int = 0
    retry_later: int = 0
    purged: int = 0

    def __str__(self) -> str:
        return f"{self.attempted} event deliveries tried, {self.retry_later} to retry, {self.purged} events purged"


def deliver_due(*, limit: int | None = None, seconds: float | None = None) -> DeliveryReport:
    """One pass: up to `limit` (EVENT_BATCH) due attempts, for at most about `seconds`; then,
    at most once per PURGE_EVERY, the outbox's retention (delivered events older than
    EVENT_RETENTION_SECONDS, one batch)."""
    report = DeliveryReport()
    limit = int(conf.get("EVENT_BATCH")) if limit is None else limit
    deadline = time.monotonic() + (seconds if seconds is not None else float(conf.get("SWEEP_INTERVAL")))
    sinks = {sink.name: sink for sink in configured()}
    down: list[str] = []
    while report.attempted < limit and time.monotonic() < deadline:
        claim = store.claim(clock.now(), _next_attempt_at, skip_sinks=down)
        if claim is None:
            break
        report.attempted += 1
        if not _attempt(claim, sinks):
            report.retry_later += 1
            down.append(claim.sink)  # one probe per pass while a sink is failing
    now = clock.now()
    global _last_purge
    if _last_purge is None or not _last_purge <= now < _last_purge + PURGE_EVERY:
        retention = float(conf.get("EVENT_RETENTION_SECONDS"))
        report.purged = store.purge_delivered(now - timedelta(seconds=retention), limit)
        # A full batch: more are due, the next pass purges again.
        _last_purge = None if report.purged >= limit else now
    return report


def retry_now(delivery_ids: Sequence[int]) -> int:
    """An operator's retry: these deliveries (not yet delivered) due now with fresh attempts,
    then tried at once in this process. Returns how many were reset."""
    count = store.retry_now(delivery_ids, clock.now())
    event_ids = store.event_ids(delivery_ids)
    for name in store.sinks_of(delivery_ids):  # an operator's retry tries even a cooling sink
        _cooling.pop(name, None)
    deliver_now(event_ids)
    return count
