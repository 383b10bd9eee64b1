"""A step attempt's time limit (`StepConfig.timeout`, ours: the official SDK has none).

In the main thread (a worker's in-process invocation, the test runner) the body is interrupted
by SIGALRM when its time runs out, so a call blocked in I/O stops too; an alarm already set
(RQ's job timeout uses one) is put back afterwards with what was left of it, and if it is due
first it keeps its place. Elsewhere nothing can interrupt a thread, so the attempt is judged
when the body returns. Either way an attempt that ran over fails with StepTimeoutError, and its
result, if it produced one late, is discarded: the retry strategy decides what happens next.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from durable.exceptions import StepTimeoutError


@contextmanager
def time_limit(seconds: int | None, what: str) -> Iterator[None]:
    """Run the block within `seconds` (None: no limit). Raises StepTimeoutError naming `what`."""
    if not seconds:
        yield
        return
    message = f"{what} ran over its timeout of {seconds}s"
    started = time.monotonic()
    with _alarm(seconds, message):
        yield
    # A body that swallowed the alarm, or that nothing could interrupt, still ran over.
    if time.monotonic() - started > seconds:
        raise StepTimeoutError(message)


@contextmanager
def _alarm(seconds: int, message: str) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise StepTimeoutError(message)

    previous_handler = signal.getsignal(signal.SIGALRM)
    previous_delay, previous_interval = signal.getitimer(signal.ITIMER_REAL)
    if previous_delay and previous_delay <= seconds:
        yield  # the alarm already set is due first: it keeps its place
        return
    started = time.monotonic()
    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            left = max(previous_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, previous_interval)
