"""Shared helpers for engine tests: crash simulation and lease expiry on the fake clock, and an
operation with every column set."""

from datetime import UTC, datetime, timedelta
from typing import Any

from durable import conf
from durable.models import Operation
from durable.runtime import run_invocation
from durable.testing import DurableTestRunner


class Crash(SystemExit):
    """Raised inside a step body to stand for the worker process dying right there (a
    SystemExit: what the engine lets end the process, where any other BaseException a step
    raises is that step's failure)."""


def crash_then_expire_lease(runner: DurableTestRunner, execution_id: str) -> None:
    """Run one invocation that must crash, then move the clock past its lease."""
    try:
        run_invocation(execution_id)
    except Crash:
        pass
    else:
        raise AssertionError("the invocation was expected to crash")
    assert runner.clock is not None
    runner.clock.advance_to(runner.clock.current + timedelta(seconds=conf.get("LEASE_SECONDS") + 1))


def set_every_column(execution_id: str, name: str) -> datetime:
    """Give the operation `name` a value in every column a load reads (datetimes with
    microseconds and a year apart, a JSON error with a non-ASCII message, numbers); returns the
    time they are set around."""
    at = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    Operation.objects.filter(execution_id=execution_id, name=name).update(
        status="PENDING",
        attempt=3,
        error={"ErrorType": "ValueError", "ErrorMessage": "nope \u00e9", "StackTrace": ["a", "b"]},
        next_attempt_at=at,
        wait_until=at + timedelta(seconds=1),
        callback_deadline=at + timedelta(seconds=2),
        heartbeat_deadline=at + timedelta(seconds=3),
        heartbeat_seconds=30,
        started_at=at - timedelta(days=400),
        ended_at=at + timedelta(microseconds=1),
        max_attempts=6,
    )
    return at


def statements(captured: Any) -> list[str]:
    """The statements a CaptureQueriesContext saw, as they read without PostgreSQL's prepared
    statements (durable.store.postgresql.readable; SQLite's are as they were sent)."""
    from durable.store.postgresql import readable

    return [readable(q["sql"]) for q in captured.captured_queries]


def sent_statements(captured: Any) -> list[str]:
    """The statements sent (as `statements` reads them), upper-cased, without SQLite's
    transaction statements."""
    sqls = [q.lstrip().upper() for q in statements(captured)]
    return [q for q in sqls if q not in ("BEGIN IMMEDIATE", "COMMIT")]
