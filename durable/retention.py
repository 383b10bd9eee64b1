"""Retention: ended executions are deleted, with their operations and history, once their
function's retention period has passed since they ended (Lambda's RetentionPeriodInDays).

A function's period is, in order: settings.DURABLE["RETENTION_BY_FUNCTION"][name], its
`@durable_execution(retention_period=...)`, settings.DURABLE["RETENTION_DAYS"] (30); 1 to 90 days
each, checked at start-up. A purge never touches a RUNNING execution, nor one the product still
needs: the RETENTION_HOLD hook is asked about every batch before it is deleted, and the ids it
returns are kept. Each batch is its own short transaction (durable.store.purge), so the journal is
never locked for long; `manage.py durable_purge` purges by hand, and the workers purge about once
per PURGE_INTERVAL across the cluster (`purge_with_lock`), at most PURGE_MAX_BATCHES batches a run.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from durable import clock, conf
from durable.exceptions import UnknownFunctionError, ValidationError
from durable.execution import DAY_SECONDS, get_function, validate_retention
from durable.runtime import default_owner
from durable.store import purge as store

log = logging.getLogger("durable.retention")

LOCK_KEY = "durable:purge-lock"
# How long a running purge holds the lock at most: one killed mid-run delays the next no longer.
RUNNING_LOCK_SECONDS = 300
MAX_BATCH_SIZE = 5000
# A bounded run reads at most this many pages of candidates per batch it may delete.
HELD_PAGES_PER_BATCH = 10


@dataclass
class FunctionPurge:
    """What a purge did (or would do) to one function's executions."""

    retention_days: int
    executions: int = 0
    operations: int = 0
    events: int = 0
    held: int = 0


@dataclass
class PurgeReport:
    functions: dict[str, FunctionPurge] = field(default_factory=dict)
    batches: int = 0
    pages: int = 0  # candidate reads, held ones included
    longest_batch_seconds: float = 0.0
    seconds: float = 0.0
    more: bool = False  # stopped at max_batches with expired executions left
    dry_run: bool = False

    @property
    def executions(self) -> int:
        return sum(f.executions for f in self.functions.values())

    @property
    def operations(self) -> int:
        return sum(f.operations for f in self.functions.values())

    @property
    def events(self) -> int:
        return sum(f.events for f in self.functions.values())

    @property
    def held(self) -> int:
        return sum(f.held for f in self.functions.values())

    def __str__(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        text = (
            f"{verb} {self.executions} executions ({self.operations} operations, {self.events} history events) "
            f"in {self.batches} batches, {self.held} held, {self.seconds:.2f}s"
        )
        return text + ("; more remain" if self.more else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "executions": self.executions,
            "operations": self.operations,
            "history_events": self.events,
            "held": self.held,
            "batches": self.batches,
            "longest_batch_seconds": round(self.longest_batch_seconds, 6),
            "seconds": round(self.seconds, 6),
            "more": self.more,
            "functions": {
                name: {
                    "retention_days": f.retention_days,
                    "executions": f.executions,
                    "operations": f.operations,
                    "history_events": f.events,
                    "held": f.held,
                }
                for name, f in sorted(self.functions.items())
            },
        }


def retention_days(function_name: str) -> int:
    """The retention period of a function's executions, in days."""
    overrides = conf.get("RETENTION_BY_FUNCTION")
    if function_name in overrides:
        return _days(overrides[function_name])
    try:
        period = get_function(function_name).retention_period
    except UnknownFunctionError:
        period = None  # its code is gone: the default applies
    if period is not None:
        return period.seconds // DAY_SECONDS
    return _days(conf.get("RETENTION_DAYS"))


def _days(value: Any) -> int:
    return validate_retention(value).seconds // DAY_SECONDS


def check_settings() -> None:
    """Refuse retention settings out of range at start-up; raises ImproperlyConfigured."""
    try:
        _days(conf.get("RETENTION_DAYS"))
    except ValidationError as exc:
        raise ImproperlyConfigured(f"DURABLE['RETENTION_DAYS']: {exc}") from None
    overrides = conf.get("RETENTION_BY_FUNCTION")
    if not isinstance(overrides, dict):
        raise ImproperlyConfigured("DURABLE['RETENTION_BY_FUNCTION'] must be a dict of function name to days")
    for name, value in overrides.items():
        try:
            _days(value)
        except ValidationError as exc:
            raise ImproperlyConfigured(f"DURABLE['RETENTION_BY_FUNCTION'][{name!r}]: {exc}") from None
    if conf.get("PURGE_INTERVAL") < 0:
        raise ImproperlyConfigured("DURABLE['PURGE_INTERVAL'] must be 0 (no periodic purge) or more seconds")
    _batch_size(conf.get("PURGE_BATCH_SIZE"))
    if conf.get("RETENTION_HOLD"):
        _hold()


def _batch_size(size: int) -> int:
    if not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
        raise ImproperlyConfigured(f"the purge's batch size must be 1 to {MAX_BATCH_SIZE}, got {size!r}")
    return size


def _hold() -> Callable[[list[str]], set[str]] | None:
    path = conf.get("RETENTION_HOLD")
    if not path:
        return None
    try:
        return import_string(path)  # type: ignore[no-any-return]
    except ImportError as exc:
        raise ImproperlyConfigured(f"DURABLE['RETENTION_HOLD']: cannot import {path!r}: {exc}") from None


def purge(
    *,
    function_name: str | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PurgeReport:
    """Delete the ended executions past their retention (of one function, or all), with their
    operations and history, batch by batch; at most `max_batches` batches (None: all). A dry run
    deletes nothing and reports what would go (the hold hook is asked too). The hook's errors
    propagate: nothing it was asked about is deleted."""
    started = time.monotonic()
    now = now or clock.now()
    size = _batch_size(batch_size or conf.get("PURGE_BATCH_SIZE"))
    hold = _hold()
    report = PurgeReport(dry_run=dry_run)
    earliest = now - timedelta(days=1)  # nothing expires sooner than the shortest period
    names = [function_name] if function_name else store.functions_ended_before(earliest)
    for name in names:
        days = retention_days(name)
        cutoff = now - timedelta(days=days)
        done = _purge_function(
            name, cutoff, report.functions.setdefault(name, FunctionPurge(days)), report, size, hold, max_batches
        )
        if not done:
            report.more = True
            break
    report.functions = {name: f for name, f in report.functions.items() if f.executions or f.held}
    report.seconds = time.monotonic() - started
    if not dry_run and (report.executions or report.held):
        log.info("purge: %s", report)
    return report


def _purge_function(
    name: str,
    cutoff: datetime,
    counts: FunctionPurge,
    report: PurgeReport,
    size: int,
    hold: Callable[[list[str]], set[str]] | None,
    max_batches: int | None,
) -> bool:
    """Purge one function's expired executions; False if it stopped at `max_batches`."""
    cursor = None
    while True:
        # Bounded: batches deleted, and pages read (held executions are read again each run).
        if max_batches is not None and (
            report.batches >= max_batches or report.pages >= HELD_PAGES_PER_BATCH * max_batches
        ):
            return not store.expired(name, cutoff, cursor, 1)
        rows = store.expired(name, cutoff, cursor, size)
        report.pages += 1
        if not rows:
            return True
        cursor = rows[-1][1], rows[-1][0]
        ids = [str(pk) for pk, _ in rows]
        kept = set(hold(ids)) if hold is not None else set()
        doomed = [pk for pk, _ in rows if str(pk) not in kept]
        counts.held += len(rows) - len(doomed)
        if doomed:
            if report.dry_run:
                counts.executions += len(doomed)
                counts.operations += store.count_operations(doomed)
                counts.events += store.count_events(doomed)
            else:
                began = time.monotonic()
                deleted = store.delete_executions(doomed, cutoff)
                report.longest_batch_seconds = max(report.longest_batch_seconds, time.monotonic() - began)
                counts.executions += deleted.executions
                counts.operations += deleted.operations
                counts.events += deleted.events
            report.batches += 1
        if len(rows) < size:
            return True


# The purge lock: SET NX while a purge runs (at most RUNNING_LOCK_SECONDS, in case its holder
# dies), then kept for PURGE_INTERVAL after it, so the cluster purges about once per interval
# however many workers there are; dropped at once after a run that left work (it goes on at the
# next try of any worker). Purges never overlap while the lock lives; if one did (a run longer
# than RUNNING_LOCK_SECONDS), its deletes are conditional and idempotent.
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3])) end
return 1
"""


def purge_try_seconds() -> float:
    """How often a worker tries for the purge lock (0: never)."""
    interval = float(conf.get("PURGE_INTERVAL"))
    return min(interval / 8, 60.0) if interval > 0 else 0.0


def purge_with_lock(connection: Any) -> PurgeReport | None:
    """A bounded purge (PURGE_MAX_BATCHES) unless another ran within PURGE_INTERVAL or is
    running; None if skipped (or the interval is 0)."""
    interval = float(conf.get("PURGE_INTERVAL"))
    if interval <= 0:
        return None
    holder = default_owner()
    running = f"{holder} {secrets.token_hex(8)}"
    try:
        if not connection.set(LOCK_KEY, running, nx=True, px=int(1000 * max(interval, RUNNING_LOCK_SECONDS))):
            return None
    except redis.RedisError as exc:
        log.warning("purge skipped: Redis unavailable (%s)", exc)
        return None
    report = None
    try:
        report = purge(max_batches=conf.get("PURGE_MAX_BATCHES"))
        return report
    finally:
        # A run that left work frees the lock for the next try; one that failed waits an interval.
        done = "" if report is not None and report.more else f"done {holder}"
        with contextlib.suppress(redis.RedisError):  # if Redis is away, the lock expires on its own
            connection.register_script(_RELEASE)(keys=[LOCK_KEY], args=[running, done, int(1000 * interval)])
