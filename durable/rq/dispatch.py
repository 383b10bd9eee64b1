"""Dispatch: wake-ups onto the queue, or into the timers set until their time.

The DISPATCHER backend of the engine (`settings.DURABLE["DISPATCHER"]`, by default
`durable.rq.dispatch`). A wake-up that is due becomes a job at once; one within
SCHEDULE_HORIZON waits in the timers set (`durable.rq.timers`); later ones live only in the
database until the sweep finds them due.
"""

from __future__ import annotations

import functools
import logging
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import redis
from rq.job import JobStatus
from rq.utils import now as rq_now
from rq.utils import utcformat
from rq.version import VERSION as RQ_VERSION

from durable import clock, conf
from durable.rq.jobs import (
    INVOKE,
    JOB_FAILURE_TTL,
    JOB_PREFIX,
    JOB_RESULT_TTL,
    execution_of,
    job_id,
    queue,
    timers_channel,
    timers_key,
)
from durable.rq.sender import sender
from durable.rq.sender import settle as settle  # wait for this process's wake-ups sent unanswered

log = logging.getLogger("durable.worker")


# Queue wake-ups in one round trip whatever their number: for each, unless its job is already
# waiting in the queue or running, save the job's hash as RQ would and push its id, and register
# the queue, as RQ's unique enqueue does in three round trips per job. A job whose hash exists is
# waiting or running, unless RQ failed it or its id sits in the intermediate queue: a worker took
# it and has not taken the lease yet (the sweep only re-dispatches executions whose lease is free).
# That worker is about to take it (a few milliseconds: it took the job as its last write began,
# or has just taken it), or it was killed. Taking the job back at first sight made every sweep
# that fell in those milliseconds deliver the job twice (the lease decided, but the second copy
# was a job run for nothing, and a worker sweeping in a thread of its own met it at its first
# job); so the first sight is only recorded (when, in a hash beside the intermediate queue), and
# the job is taken back (moved to the queue) only when seen there again TAKEN_STUCK_MS later
# (the next sweep), long before REDISPATCH_GRACE. The hash is bounded: past 10,000 entries it
# starts again (a stuck job is then taken back one sweep later).
# An RQ internal: the job hash and the rq:queues registry as RQ writes them (checked against rq
# 3.0.0); the hash's fields come from RQ's own Job.to_dict, so only the layout is assumed.
# KEYS: rq:queues, the queue's key, its intermediate queue's key.
# ARGV: then per job: its key, its id, n, n field/value pairs.
# MAY_QUEUE, the test above, is shared with the timer mover's script (`durable.rq.timers`) and
# _MISSING; `take` removes the id from the intermediate queue (to queue the job again), else the
# test only looks (and records a first sight).
TAKEN_STUCK_MS = 2000
TAKEN_SEEN_PREFIX = "durable:taken-seen:"
MAY_QUEUE = """
local function may_queue(intermediate, key, id, take)
  if redis.call('LPOS', intermediate, id) then
    local seen = 'TAKEN_SEEN_PREFIX' .. intermediate
    local now = redis.call('TIME')
    local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    local first = tonumber(redis.call('HGET', seen, id))
    if not first then
      if redis.call('HLEN', seen) >= 10000 then redis.call('DEL', seen) end
      redis.call('HSET', seen, id, string.format('%d', ms))
      redis.call('PEXPIRE', seen, 600000)
      return false
    end
    if ms - first < STUCK_MS then return false end
    if take then
      redis.call('LREM', intermediate, 1, id)
      redis.call('HDEL', seen, id)
    end
    return true
  end
  return redis.call('EXISTS', key) == 0 or redis.call('HGET', key, 'status') == 'failed'
end
""".replace("STUCK_MS", str(TAKEN_STUCK_MS)).replace("TAKEN_SEEN_PREFIX", TAKEN_SEEN_PREFIX)


def taken_seen_key(intermediate_queue_key: str) -> str:
    """Where MAY_QUEUE records when it first saw a job in the intermediate queue."""
    return f"{TAKEN_SEEN_PREFIX}{intermediate_queue_key}"


_ENQUEUE = (
    MAY_QUEUE
    + """
redis.call('SADD', KEYS[1], KEYS[2])
local queued, i = 0, 1
while i <= #ARGV do
  local key, id, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if may_queue(KEYS[3], key, id, true) then
    redis.call('DEL', key)
    redis.call('HSET', key, unpack(ARGV, i + 3, i + 2 + 2 * n))
    redis.call('RPUSH', KEYS[2], id)
    queued = queued + 1
  end
  i = i + 3 + 2 * n
end
return queued
"""
)
_enqueue_scripts: dict[int, Any] = {}

# Which of these jobs MAY_QUEUE would queue, changing nothing: a batch of CHECK_FIRST or more
# wake-ups (the sweep's, re-dispatching what is due, most of it usually waiting in the queue)
# first asks this, so that only the missing jobs' hashes are built and sent. Below that size,
# building them all costs less than the round trip.
# KEYS: the intermediate queue's key. ARGV: per job: its key, its id. Returns their positions (from 1).
_MISSING = (
    MAY_QUEUE
    + """
local missing, i = {}, 1
while i <= #ARGV do
  if may_queue(KEYS[1], ARGV[i], ARGV[i + 1], false) then
    missing[#missing + 1] = (i + 1) / 2
  end
  i = i + 2
end
return missing
"""
)
_missing_scripts: dict[int, Any] = {}
CHECK_FIRST = 8

# Add timers to the set, each with its job's hash built ahead (the mover then queues it without a
# round trip of its own or any Python: `durable.rq.timers`), and nudge the timer mover, which
# sleeps until the earliest one, if one of them is earlier than every timer already there.
# KEYS: the timers set, its nudge channel.
# ARGV: per timer: score, member, the built hash's time to live (ms), n, n field/value pairs.
_SCHEDULE = """
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local earliest, earliest_arg, i = nil, nil, 1
while i <= #ARGV do
  local score, member, n = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 3])
  redis.call('ZADD', KEYS[1], score, member)
  local built = KEYS[1] .. ':job:' .. member
  redis.call('DEL', built)
  redis.call('HSET', built, unpack(ARGV, i + 4, i + 3 + 2 * n))
  redis.call('PEXPIRE', built, ARGV[i + 2])
  if earliest == nil or score < earliest then earliest, earliest_arg = score, ARGV[i] end
  i = i + 4 + 2 * n
end
if earliest ~= nil and (#first == 0 or earliest < tonumber(first[2])) then
  redis.call('PUBLISH', KEYS[2], earliest_arg)
end
"""
_schedule_scripts: dict[int, Any] = {}

# How long a timer's built job hash outlives its time: a mover that takes it later than that
# (every worker stopped meanwhile) builds the hash again, as the sweep's dispatch does.
BUILT_JOB_GRACE_SECONDS = 3600


def schedule_wake_ups(timers: dict[str, float]) -> None:
    """Put wake-ups (job id: Unix time) in the timers set with their jobs' hashes, nudging the
    mover if one is the earliest."""
    if not timers:
        return
    q = queue()
    script = _schedule_scripts.get(id(q))
    if script is None:
        script = _schedule_scripts[id(q)] = q.connection.register_script(_SCHEDULE)
    now = time.time()
    args: list[Any] = []
    job_hash = _job_hashes(q)
    for wake_up, when in timers.items():
        fields = job_hash(execution_of(wake_up))
        ttl_ms = int((max(when - now, 0) + BUILT_JOB_GRACE_SECONDS) * 1000)
        args += (repr(when), wake_up, ttl_ms, len(fields) // 2, *fields)
    script(keys=[timers_key(q.name), timers_channel(q.name)], args=args)


def _job_hashes(q: Any) -> Callable[[str], list[Any]]:
    """What builds the hash of an invocation job of `q` queued now (by its execution id), as RQ's
    own enqueue would save it: a copy of the queue's template (_JobHash) with the job's fields."""
    timeout = 2 * max(conf.get("INVOCATION_TIMEOUT"), 900)  # a backstop: the lease keeper stops overruns
    template = _templates.get((id(q), timeout))
    if template is None:
        template = _templates[(id(q), timeout)] = _JobHash.of(q, timeout)
    return functools.partial(template.fields, stamp=utcformat(rq_now()))


def _rq_job_fields(q: Any, execution_id: str, timeout: int, at: datetime) -> list[Any]:
    """The hash as RQ makes it (Job.create, then to_dict)."""
    job = q.job_class.create(
        INVOKE,
        args=(execution_id,),
        connection=q.connection,
        id=f"{JOB_PREFIX}{execution_id}",  # not in the hash (its key)
        result_ttl=JOB_RESULT_TTL,
        failure_ttl=JOB_FAILURE_TTL,
        timeout=timeout,
        description=_description(execution_id),
        origin=q.name,
        serializer=q.serializer,
        status=JobStatus.QUEUED,
    )
    job.created_at = job.enqueued_at = at
    fields: list[Any] = []
    for name, value in job.to_dict().items():
        if value is not None:
            fields += (name, value)
    return fields


def _description(execution_id: str) -> str:
    return f"durable invocation of {execution_id}"


class _JobHash:
    """RQ's hash of an invocation job, made by RQ once per queue and timeout; each job copies it
    and fills in the fields that vary (its data, description and times). Made by RQ each time
    (Job.create, then to_dict), the hash cost a tenth of a start, and a sweep re-dispatching a
    backlog as much per execution. The template checks itself against RQ when it is made: if
    a copy filled in for another job differs from RQ's own hash of it (another RQ), RQ makes
    every job's."""

    VARYING = ("data", "description", "created_at", "enqueued_at")

    def __init__(self, q: Any, timeout: int, template: list[Any] | None) -> None:
        self.q = q
        self.timeout = timeout
        self.template = template
        self.at: dict[str, int] = {}
        if template is not None:
            names = template[0::2]
            self.at = {name: 2 * names.index(name) + 1 for name in self.VARYING}

    @classmethod
    def of(cls, q: Any, timeout: int) -> _JobHash:
        # The copy of one job's hash, filled in for another job, must be RQ's hash of the other.
        at = rq_now()
        one = _rq_job_fields(q, "00000000-0000-4000-8000-000000000001", timeout, at)
        other, at_other = "00000000-0000-4000-8000-000000000002", at + timedelta(seconds=1)
        if all(name in one[0::2] for name in cls.VARYING):
            copying = cls(q, timeout, one)
            if copying.fields(other, utcformat(at_other)) == _rq_job_fields(q, other, timeout, at_other):
                return copying
        log.warning("RQ's job hash is not the one expected (rq %s): RQ makes each job's", RQ_VERSION)
        return cls(q, timeout, None)

    def fields(self, execution_id: str, stamp: str) -> list[Any]:
        """The hash's fields and values, in a list; `stamp`: the time, formatted as RQ does."""
        if self.template is None:
            return _rq_job_fields(self.q, execution_id, self.timeout, rq_now())
        fields = self.template.copy()
        at = self.at
        fields[at["data"]] = zlib.compress(self.q.serializer.dumps((INVOKE, None, (execution_id,), {})))
        fields[at["description"]] = _description(execution_id)
        fields[at["created_at"]] = fields[at["enqueued_at"]] = stamp
        return fields


_templates: dict[tuple[int, int], _JobHash] = {}


def enqueue_wake_ups(wake_ups: list[tuple[str, str]]) -> int:
    """Queue invocation jobs (execution id, job id) not already in Redis, in one round trip (two
    for a batch of CHECK_FIRST or more); returns how many were queued."""
    q = queue()
    if len(wake_ups) >= CHECK_FIRST:
        wake_ups = _missing(q, wake_ups)
    if not wake_ups:
        return 0
    script = _enqueue_script(q)
    return int(script(keys=[q.redis_queues_keys, q.key, q.intermediate_queue_key], args=_enqueue_args(q, wake_ups)))


def send_wake_ups(wake_ups: list[tuple[str, str]]) -> None:
    """`enqueue_wake_ups` for a few wake-ups, without waiting for Redis's answer
    (durable.rq.sender; `settle` reads it): how many were queued is not known. Raises RedisError
    if Redis cannot be reached."""
    q = queue()
    keys = [q.redis_queues_keys, q.key, q.intermediate_queue_key]
    sender(q.connection).call(_enqueue_script(q), keys, _enqueue_args(q, wake_ups))


def _enqueue_script(q: Any) -> Any:
    script = _enqueue_scripts.get(id(q))
    if script is None:
        script = _enqueue_scripts[id(q)] = q.connection.register_script(_ENQUEUE)
    return script


def _enqueue_args(q: Any, wake_ups: list[tuple[str, str]]) -> list[Any]:
    args: list[Any] = []
    job_hash = _job_hashes(q)
    for execution_id, job_id_ in wake_ups:
        fields = job_hash(execution_id)
        args += (q.job_class.key_for(job_id_), job_id_, len(fields) // 2, *fields)
    return args


def _missing(q: Any, wake_ups: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The wake-ups whose jobs the queue's script would queue (their jobs are not waiting)."""
    script = _missing_scripts.get(id(q))
    if script is None:
        script = _missing_scripts[id(q)] = q.connection.register_script(_MISSING)
    args: list[Any] = []
    for _, job_id_ in wake_ups:
        args += (q.job_class.key_for(job_id_), job_id_)
    return [wake_ups[position - 1] for position in script(keys=[q.intermediate_queue_key], args=args)]


def dispatch(execution_id: str, when: datetime, generation: int = 0) -> None:
    """The DISPATCHER backend: queue (or schedule) an invocation of `execution_id` at `when`.

    `generation` > 0 gives a wake-up that is long overdue a new job id, in case the first job
    for it is stuck in Redis (its worker killed before it took the lease).
    """
    dispatch_many([(execution_id, when, generation)])


def dispatch_many(wake_ups: list[tuple[str, datetime, int]]) -> None:
    """`dispatch` for many wake-ups at once: one round trip to Redis in all."""
    now = clock.now()
    horizon = conf.get("SCHEDULE_HORIZON")
    due: list[tuple[str, str]] = []
    timers: dict[str, float] = {}
    for execution_id, when, generation in wake_ups:
        delay = (when - now).total_seconds()
        if delay > horizon:
            continue  # far in the future: the sweep finds it when it is due
        wake_up = job_id(execution_id, when, generation)
        if delay <= 0:
            due.append((execution_id, wake_up))
        else:
            timers[wake_up] = when.timestamp()
    try:
        if len(due) >= CHECK_FIRST:
            enqueue_wake_ups(due)
        elif due:
            # A commit's (a start, a callback's completion): its answer is not waited for.
            send_wake_ups(due)
        schedule_wake_ups(timers)
    except redis.RedisError as exc:
        # Losing a nudge loses nothing: the sweep re-dispatches what is due.
        log.warning("could not dispatch %d wake-up(s) to Redis (%s); the sweep will", len(wake_ups), exc)


dispatch.many = dispatch_many  # type: ignore[attr-defined]
