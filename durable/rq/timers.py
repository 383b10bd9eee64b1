"""Timers: wake-ups that wait for their time in a Redis sorted set, scored to the millisecond.

One thread in one worker at a time (a Redis lock renewed every second, taken over within three
seconds when its holder dies) moves the ones that are due to the queue every TIMER_POLL_SECONDS,
taking them out of the set atomically: a timer never fires early. RQ's own scheduler was used
before: it compares whole seconds and polls once a second, so wake-ups came up to a second early
or late (see the README's benchmarks).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from rq.utils import as_text

from durable import clock
from durable.rq.dispatch import enqueue_wake_ups
from durable.rq.jobs import execution_of, queue, timers_key
from durable.rq.outage import Backoff

log = logging.getLogger("durable.worker")

# How often the worker holding the timers lock moves due wake-ups to the queue.
TIMER_POLL_SECONDS = 0.02
# Timers released per poll at most (the rest go at the next poll).
TIMER_BATCH = 500
TIMER_LOCK_KEY = "durable:timers:lock"
TIMER_LOCK_MS = 3000


# Take the timers that are due out of the set, atomically, so two pollers never both take one.
_DUE_TIMERS = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""


def release_due_timers(connection: Any, script: Any = None) -> int:
    """Move the wake-ups whose time has come from the timers set to the queue; returns how many.

    A wake-up taken from the set but not enqueued (Redis failing in between) is a lost nudge;
    the sweep re-dispatches it once it is overdue by REDISPATCH_GRACE.
    """
    q = queue()
    due = (script or connection.register_script(_DUE_TIMERS))(
        keys=[timers_key(q.name)], args=[repr(clock.now().timestamp()), TIMER_BATCH]
    )
    wake_ups = [as_text(member) for member in due]
    enqueue_wake_ups([(execution_of(wake_up), wake_up) for wake_up in wake_ups])
    return len(wake_ups)


# Take or keep the timers lock: one poller at a time, across processes and machines.
_TIMER_LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
"""


class TimerPoller(threading.Thread):
    """A worker's timer thread: while it holds the timers lock, it moves due wake-ups to the
    queue every TIMER_POLL_SECONDS; otherwise it checks now and then whether the holder died."""

    def __init__(self, connection: Any, name: str) -> None:
        super().__init__(name="durable-timers", daemon=True)
        self.connection = connection
        self.holder = name
        self._stopped = threading.Event()
        self._lock = connection.register_script(_TIMER_LOCK)
        self._due = connection.register_script(_DUE_TIMERS)

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        holding, checked = False, 0.0
        outage = Backoff("Redis (for the timer thread)", log)
        while not self._stopped.wait(TIMER_POLL_SECONDS if holding else 0.5):
            try:
                now = time.monotonic()
                if not holding or now - checked >= TIMER_LOCK_MS / 3000:  # renew at a third of its life
                    holding = bool(self._lock(keys=[TIMER_LOCK_KEY], args=[self.holder, TIMER_LOCK_MS]))
                    checked = now
                if holding:
                    release_due_timers(self.connection, self._due)
                outage.recovered()
            except redis.RedisError as exc:
                holding = False
                outage.pause(exc)  # due wake-ups it could not move are the sweep's meanwhile
            except Exception:
                holding = False
                log.exception("timer poll failed; will try again")
