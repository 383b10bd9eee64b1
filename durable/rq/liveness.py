"""Worker liveness: a file the worker processes touch while they work, whose age says they do.

Each worker process runs a small thread that touches WORKER_HEARTBEAT_FILE every
HEARTBEAT_SECONDS while its work loop answers: the loop ran within LOOP_STALL_SECONDS, or an
invocation is running (whose own budget the lease keeper enforces). `manage.py durable_worker
--check` exits 0 while the file is younger than WORKER_HEARTBEAT_MAX_AGE: a container's
healthcheck, with no Redis or database round trip (a worker riding out an outage is alive).
A file on the worker's own machine, not a Redis key: a healthcheck asks about this container's
workers, not the cluster's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("durable.worker")

HEARTBEAT_SECONDS = 2.0
# A work loop that has not come round for this long, outside an invocation, is stuck.
LOOP_STALL_SECONDS = 60.0


def touch(path: str | Path) -> None:
    """Mark the heartbeat now (the file holds the time and the process id, for a reader)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_text(f"{time.time():.3f} {os.getpid()}\n")
    partial.replace(target)  # atomic: a reader never sees a half-written file


def age(path: str | Path) -> float | None:
    """Seconds since the heartbeat was last marked; None if it never was."""
    try:
        return max(0.0, time.time() - Path(path).stat().st_mtime)
    except FileNotFoundError:
        return None


def fresh(path: str | Path, max_age: float) -> bool:
    seconds = age(path)
    return seconds is not None and seconds <= max_age


def remove(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        Path(path).unlink()


class Heartbeat(threading.Thread):
    """Touches `path` every HEARTBEAT_SECONDS while `answering()` says the worker answers."""

    def __init__(self, path: str | Path, answering: Callable[[], bool]) -> None:
        super().__init__(name="durable-heartbeat", daemon=True)
        self.path = path
        self.answering = answering
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        while True:
            try:
                if self.answering():
                    touch(self.path)
            except OSError as exc:
                log.warning("could not touch the heartbeat file %s (%s)", self.path, exc)
            if self._stopped.wait(HEARTBEAT_SECONDS):
                return
