"""Invocation jobs on RQ: the queue, the one codec of their ids and keys, and the job itself.

A job is a nudge: its id names the execution and the wake-up time (`durable-<execution
id>-<milliseconds>[-g<generation>]`), so two dispatches of one wake-up collapse into one job, and
a worker runs it from the id alone. The Lua scripts of `durable.rq` take the prefix as an
argument rather than spelling it again.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import django_rq
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections

from durable import conf, logcontext
from durable.exceptions import DatabaseUnreachableError
from durable.rq.outage import Backoff
from durable.runtime import run_invocation
from durable.store import journal_store

log = logging.getLogger("durable.worker")

JOB_PREFIX = "durable-"
# RQ's forking worker deletes a finished job at once (the in-process worker's fast path keeps its
# hash FINISHED_JOB_KEEP_MS, durable.rq.worker, to absorb a sweep's late re-dispatch); a failed
# one stays a minute for inspection (its execution is re-dispatched under a new id).
JOB_RESULT_TTL = 0
JOB_FAILURE_TTL = 60
# A job that arrives a little before its wake-up (another machine's clock, say) naps until due.
EARLY_TOLERANCE = 1.5


def job_id(execution_id: str, when: datetime, generation: int = 0) -> str:
    suffix = f"-g{generation}" if generation else ""
    return f"{JOB_PREFIX}{execution_id}-{int(when.timestamp() * 1000)}{suffix}"


def is_invocation(job_id_: str) -> bool:
    return job_id_.startswith(JOB_PREFIX)


def execution_of(job_id_: str) -> str:
    return job_id_.removeprefix(JOB_PREFIX)[:36]  # a UUID's 36 characters


def timers_key(queue_name: str) -> str:
    """The sorted set of wake-ups waiting for their time: member a job id, score its Unix time."""
    return f"durable:timers:{queue_name}"


def timers_channel(queue_name: str) -> str:
    """The Pub/Sub channel that wakes the timer mover when a timer earlier than all others is set."""
    return f"durable:timers:{queue_name}:nudge"


_queues: dict[tuple[str, str], Any] = {}


def queue() -> Any:
    """The invocation queue; one Redis connection pool per process and queue settings."""
    name = conf.get("QUEUE")
    key = (name, repr(settings.RQ_QUEUES.get(name)))
    if key not in _queues:
        # commit_mode "auto": dispatch already happens after the transaction commits.
        _queues[key] = django_rq.get_queue(name, commit_mode="auto")
    return _queues[key]


# True where an overrunning invocation may end the process: a supervised worker or a work-horse.
_process_is_disposable = False


def set_process_disposable(disposable: bool) -> None:
    """Say whether an invocation past its budget may end this process (see durable.lease)."""
    global _process_is_disposable
    _process_is_disposable = disposable


INVOKE = f"{__name__}.invoke"


def invoke(execution_id: str) -> str:
    """The RQ job: one invocation (after a short nap if it was released a little early).

    While the database cannot be reached, it waits for it (bounded back-off) and then runs: an
    outage does not use the wake-up up. (The engine's in-process worker puts the wake-up back on
    the queue instead and waits before taking any job.)
    """
    backoff = Backoff("the database", log)
    while True:
        try:
            outcome = invoke_once(execution_id)
        except DatabaseUnreachableError as exc:
            backoff.pause(exc)
            continue
        backoff.recovered()
        return outcome


def invoke_once(execution_id: str) -> str:
    """One invocation; raises DatabaseUnreachableError if the lease could not be taken for an outage."""
    with logcontext.bound(execution_id=execution_id):  # the worker's lines about this job carry it too
        return _invoke_once(execution_id)


# A connection a job used this recently (and left without errors) skips Django's health check
# before the next job (on PostgreSQL, a SELECT 1 round trip more per job). A database restarted
# within that moment fails the next lease, and that job is put back on the queue.
HEALTH_CHECK_AFTER_IDLE = 1.0
_last_job_ended = -HEALTH_CHECK_AFTER_IDLE


def renew_aging_connections() -> None:
    """For a worker waiting for a job: replace now each connection past half its CONN_MAX_AGE,
    so that no job finds one expired and pays for the new one. On PostgreSQL that is a server
    process started and the engine's statements prepared again before the lease: 14 ms in a traced
    bench run whose phases outlasted CONN_MAX_AGE, a burst of timers all that late. The engine's
    new session is warmed here too (on PostgreSQL, the statements the old one had prepared are
    prepared and planned again: SqlJournalStore.renew_connection). A worker that
    is never idle still renews them between jobs, as Django does per request. Never raises: a
    database that does not answer is the next job's to find."""
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        max_age = conn.settings_dict.get("CONN_MAX_AGE")
        if conn.connection is None or not max_age or conn.close_at is None or conn.in_atomic_block:
            continue  # none open, closed after each job (0), or kept for good (None)
        if now >= conn.close_at - max_age / 2:
            try:
                if conn.alias == DEFAULT_DB_ALIAS:
                    journal_store().renew_connection()  # the engine's: warmed for the next job
                else:
                    conn.close()
                    conn.ensure_connection()
            except Exception as exc:  # noqa: BLE001
                log.warning("could not renew the database connection %r while idle: %s", conn.alias, exc)


def check_connections() -> None:
    """Django's check of reused connections, as per request (errors, age, then a health check
    at first use), the health check only after HEALTH_CHECK_AFTER_IDLE seconds without a job."""
    close_old_connections()
    if time.monotonic() - _last_job_ended < HEALTH_CHECK_AFTER_IDLE:
        for conn in connections.all(initialized_only=True):
            if conn.connection is not None:
                conn.health_check_done = True  # type: ignore[attr-defined]


def _invoke_once(execution_id: str) -> str:
    # Jobs are not requests: check reused connections here, as Django does per request, so a
    # restarted database costs no failed job.
    global _last_job_ended
    check_connections()
    try:
        return _invoke(execution_id)
    except DatabaseUnreachableError:
        raise  # no handler code ran: the wake-up is still good
    except Exception:
        # Never fail the job: a failed job's id stays taken in Redis for a while, which would
        # hold back the sweep's re-dispatch of this wake-up. The database says what is due.
        log.exception("invocation of %s failed; the sweep will dispatch it again", execution_id)
        return "error"
    finally:
        close_old_connections()
        _last_job_ended = time.monotonic()


def _invoke(execution_id: str) -> str:
    outcome = run_invocation(execution_id, kill_on_budget=_process_is_disposable, wait_if_early=EARLY_TOLERANCE)
    return outcome.status or ("skipped" if not outcome.ran else "lease lost")
