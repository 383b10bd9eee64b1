"""Shared helpers for engine tests: crash simulation and lease expiry on the fake clock."""

from datetime import timedelta

from durable import conf
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
