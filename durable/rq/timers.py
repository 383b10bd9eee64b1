"""Timers: wake-ups that wait for their time in a Redis sorted set, scored to the microsecond.

One thread in one worker at a time (a Redis lock renewed every second, taken over within three
seconds when its holder dies) moves the ones that are due to the queue, taking them out of the
set atomically and comparing their time with the clock. It moves each `TIMER_LEAD_MS` (5 ms)
before its time (in a burst, between the lead and half of it, see `_move_then_sleep`): the
worker that takes it takes the execution's lease and reads its journal meanwhile, then naps
until the time (`durable.runtime.run_invocation`'s `wait_if_early`), so the code after a wait
never starts before its time, and when a worker is free, starts right at it. Queued at its
time, a wake-up waited for the mover's own wake-up, its script, the queue hop and the lease's
round trip after its time (see the README's benchmarks).

The mover does not poll: it reads the earliest time left in the set and sleeps until then less
the lead, on a Pub/Sub channel the scheduling script (`durable.rq.dispatch`) publishes to when
it adds a timer earlier than every other, so an earlier timer scheduled meanwhile wakes it at
once. The wait's time-out is the client's (a `select` on the socket, precise to a fraction of a
millisecond), not Redis's: the server checks blocking commands' time-outs only `hz` times a
second (100 ms late by default). It wakes at least once a second to renew its lock, so a nudge
lost (its subscription cut and restored while Redis was unreachable) delays a timer by a second
at most; a wake-up lost with Redis is the sweep's. RQ's own scheduler was used before: it
compares whole seconds and polls once a second; then a 20 ms poll of this set.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from typing import Any

import redis
from rq.utils import as_text, utcformat
from rq.utils import now as rq_now

from durable import clock, conf
from durable.rq.dispatch import MAY_QUEUE, enqueue_wake_ups
from durable.rq.jobs import execution_of, queue, timers_channel, timers_key
from durable.rq.outage import Backoff

log = logging.getLogger("durable.worker")

# Timers released per pass at most (the rest go at once in the next pass).
TIMER_BATCH = 500
TIMER_LOCK_KEY = "durable:timers:lock"
TIMER_LOCK_MS = 3000
# How often a worker that does not hold the lock checks whether its holder died.
TIMER_TAKEOVER_SECONDS = 0.5
# The GIL's switch interval in a process with a timer thread (CPython's default is 5 ms).
TIMER_SWITCH_INTERVAL = 0.0005
# The shortest sleep: a wake-up read as due in less (a clock's rounding) is taken on the next pass.
_SHORTEST_SLEEP = 0.0002


# Take the timers that are due out of the set, atomically, so two movers never both take one, and
# queue each as `durable.rq.dispatch`'s enqueue does, from the job hash built when it was
# scheduled (unless its job is already queued or running); return how many were due, those with
# no hash built (scheduled otherwise, or the hash expired), which Python queues, and the earliest
# time left (false if none), which the mover sleeps until.
# KEYS: the timers set, rq:queues, the queue's key, its intermediate queue's key.
# ARGV: now, batch size, RQ's job key prefix, the enqueued_at time as RQ writes it.
_DUE_TIMERS = (
    MAY_QUEUE
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local unbuilt = {}
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
  redis.call('SADD', KEYS[2], KEYS[3])
  for _, id in ipairs(due) do
    local built, key = KEYS[1] .. ':job:' .. id, ARGV[3] .. id
    if redis.call('EXISTS', built) == 0 then
      unbuilt[#unbuilt + 1] = id
    else
      if may_queue(KEYS[4], key, id, true) then
        redis.call('DEL', key)
        redis.call('RENAME', built, key)
        redis.call('PERSIST', key)
        redis.call('HSET', key, 'status', 'queued', 'enqueued_at', ARGV[4])
        redis.call('RPUSH', KEYS[3], id)
      else
        redis.call('DEL', built)
      end
    end
  end
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, unbuilt, next[2] or false}
"""
)


def take_due_timers(connection: Any, script: Any = None, lead: float = 0.0) -> tuple[int, float | None]:
    """Move the wake-ups whose time has come, or comes within `lead` seconds, from the timers
    set to the queue; returns how many, and the earliest time (a Unix timestamp) of those left,
    None if the set is empty.

    A wake-up taken from the set but not enqueued (Redis failing in between) is a lost nudge;
    the sweep re-dispatches it once it is overdue by REDISPATCH_GRACE.
    """
    q = queue()
    count, unbuilt, earliest = (script or connection.register_script(_DUE_TIMERS))(
        keys=[timers_key(q.name), q.redis_queues_keys, q.key, q.intermediate_queue_key],
        args=[
            repr(clock.now().timestamp() + lead),
            TIMER_BATCH,
            q.job_class.redis_job_namespace_prefix,
            utcformat(rq_now()),
        ],
    )
    if unbuilt:
        enqueue_wake_ups([(execution_of(as_text(w)), as_text(w)) for w in unbuilt])
    return int(count), float(earliest) if earliest is not None else None


def release_due_timers(connection: Any, script: Any = None) -> int:
    """`take_due_timers`, counting only: how many wake-ups went to the queue."""
    return take_due_timers(connection, script)[0]


def timer_lead() -> float:
    """How long before its time the mover queues a wake-up, in seconds (`TIMER_LEAD_MS`, held
    within 0 to 1 s whatever the settings say: the worker naps at most EARLY_TOLERANCE)."""
    return min(max(float(conf.get("TIMER_LEAD_MS")), 0.0), 1000.0) / 1000


# Take or keep the timers lock: one mover at a time, across processes and machines.
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
    queue and sleeps until the next one is due (or an earlier one is scheduled); otherwise it
    checks every TIMER_TAKEOVER_SECONDS whether the holder died."""

    def __init__(self, connection: Any, name: str) -> None:
        super().__init__(name="durable-timers", daemon=True)
        self.connection = connection
        self.holder = name
        self._stopped = threading.Event()
        self._lock = connection.register_script(_TIMER_LOCK)
        self._due = connection.register_script(_DUE_TIMERS)
        self._nudges: Any = None  # the Pub/Sub subscription, while holding the lock
        self.moves = 0  # passes that moved wake-ups (for tests and curious operators)

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        # The worker's main thread runs invocations meanwhile: this thread, woken for a due timer,
        # waits for the GIL up to the switch interval at each of its three wake-ups (the timer,
        # then each of two round trips to Redis). With CPython's 5 ms, a timer moved while the
        # worker ran Python code came 10 ms late at p50; with 0.5 ms, 3 ms (see the README).
        sys.setswitchinterval(min(sys.getswitchinterval(), TIMER_SWITCH_INTERVAL))
        outage = Backoff("Redis (for the timer thread)", log)
        holding, renewed = False, 0.0
        try:
            while not self._stopped.is_set():
                try:
                    now = time.monotonic()
                    renew_every = TIMER_LOCK_MS / 3000  # renew at a third of its life
                    if not holding or now - renewed >= renew_every:
                        holding = bool(self._lock(keys=[TIMER_LOCK_KEY], args=[self.holder, TIMER_LOCK_MS]))
                        renewed = now
                    if holding:
                        self._move_then_sleep(renewed + renew_every)
                    else:
                        self._unsubscribe()
                        self._stopped.wait(TIMER_TAKEOVER_SECONDS)
                    outage.recovered()
                except redis.RedisError as exc:
                    holding = False
                    self._unsubscribe()
                    outage.pause(exc)  # due wake-ups it could not move are the sweep's meanwhile
                except Exception:
                    holding = False
                    self._unsubscribe()
                    log.exception("timer thread failed; will try again")
                    self._stopped.wait(TIMER_TAKEOVER_SECONDS)
        finally:
            self._unsubscribe()

    def _move_then_sleep(self, renew_at: float) -> None:
        """One pass of the lock holder: move what is due, then sleep until the earliest wake-up
        left, an earlier one's nudge, or `renew_at` (monotonic), whichever comes first."""
        if self._nudges is None:
            # Subscribed before the set is read: a nudge published after the read is never missed.
            self._nudges = self._subscribe()
        while self._nudges.get_message(timeout=0) is not None:
            pass  # nudges for timers already in the set, which the read below sees
        lead = timer_lead()
        moved, earliest = take_due_timers(self.connection, self._due, lead)
        if moved:
            self.moves += 1
        if moved >= TIMER_BATCH:
            return  # more are due: the next pass at once
        sleep = until_renewal = renew_at - time.monotonic()
        if earliest is not None:
            sleep = min(sleep, earliest - lead - clock.now().timestamp())
            if moved:
                # A burst (wake-ups closer together than the lead): one pass per lead/2 at most,
                # each moving what comes due within the lead, rather than one per wake-up, each
                # taking the GIL from the invocation this worker runs (0.25 ms of it a pass,
                # measured). Whatever is left is due after the lead, so each wake-up still goes
                # at least lead/2 before its time; a nudge still wakes the mover at once.
                sleep = max(sleep, min(lead / 2, until_renewal))
        if sleep > 0:
            self._nudges.get_message(timeout=max(sleep, _SHORTEST_SLEEP))

    def _subscribe(self) -> Any:
        """A subscription to the nudges, once Redis has confirmed it: a nudge published after
        the set is read is never missed."""
        nudges = self.connection.pubsub()
        nudges.subscribe(timers_channel(queue().name))
        confirmed = nudges.get_message(timeout=TIMER_LOCK_MS / 3000)
        if confirmed is None or confirmed["type"] != "subscribe":
            nudges.close()
            raise redis.TimeoutError("the timers' nudge subscription was not confirmed")
        nudges.ignore_subscribe_messages = True
        return nudges

    def _unsubscribe(self) -> None:
        nudges, self._nudges = self._nudges, None
        if nudges is not None:
            with contextlib.suppress(redis.RedisError):
                nudges.close()
