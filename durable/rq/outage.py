"""Riding out an outage of Redis or of the database: wait, with bounded back-off, never give up.

A worker that loses Redis or the database can do nothing useful until it is back, and nothing
is gained by exiting (its supervisor would only start another that finds the same outage), nor by
taking wake-ups it cannot run (each would be used up, leaving its execution to the sweep). So it
pauses, 0.1 s at first and twice as long each time up to 2 s, trying again after each pause:
back within a fraction of a second after a short restart, and no busy loop during a long one.
It says so when the outage begins, every 30 s while it lasts, and when it ends.
"""

from __future__ import annotations

import logging
import time

import redis
from django.db import InterfaceError, OperationalError, connection

# What an unreachable server raises (redis-py's BusyLoadingError, "still loading", included).
REDIS_OUTAGE = (redis.ConnectionError, redis.TimeoutError)
DATABASE_OUTAGE = (OperationalError, InterfaceError)

FIRST_PAUSE = 0.1
LONGEST_PAUSE = 2.0
LOG_EVERY = 30.0


class Backoff:
    """Pauses while `what` cannot be reached: exponential from FIRST_PAUSE, at most LONGEST_PAUSE."""

    def __init__(self, what: str, log: logging.Logger) -> None:
        self.what = what
        self.log = log
        self.since: float | None = None  # when the outage was first seen
        self._pause = FIRST_PAUSE
        self._logged = 0.0

    @property
    def failing(self) -> bool:
        return self.since is not None

    def pause(self, error: BaseException | None) -> None:
        """Note the failure (logged at its start and every LOG_EVERY seconds) and sleep a while."""
        now = time.monotonic()
        if self.since is None:
            self.since = self._logged = now
            self.log.warning("%s is unreachable (%s); waiting for it, with back-off", self.what, one_line(error))
        elif now - self._logged >= LOG_EVERY:
            self._logged = now
            self.log.warning("%s is still unreachable after %.0f s (%s)", self.what, now - self.since, one_line(error))
        time.sleep(self._pause)
        self._pause = min(2 * self._pause, LONGEST_PAUSE)

    def answered(self) -> None:
        """`what` answered a check: log how long it was away. The pauses keep their length until
        `recovered`: a check can answer while the work itself still fails (a lock time-out)."""
        if self.since is not None:
            self.log.warning("%s is reachable again after %.1f s", self.what, time.monotonic() - self.since)
        self.since = None

    def recovered(self) -> None:
        """The work went through: log the outage's end if not yet said, and start the next
        outage's pauses short."""
        self.answered()
        self._pause = FIRST_PAUSE


def one_line(error: BaseException | None) -> str:
    """An error's message on one line (psycopg's span several)."""
    return " ".join(str(error).split())


def database_reachable() -> bool:
    """Whether the default database answers a trivial query, on a new connection (the old one may
    have died with the server)."""
    try:
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DATABASE_OUTAGE:
        return False
