"""Running invocations on RQ: everything the engine knows of RQ and Redis is in this package.

- `jobs`: the queue, the job-id codec (Python's and the Lua scripts' one source), the job.
- `dispatch`: the DISPATCHER backend (`durable.rq.dispatch`, the default): wake-ups to the
  queue in one round trip, or to the timers set.
- `timers`: the sorted set of wake-ups waiting for their time, and the thread that releases them.
- `worker`: the worker classes `manage.py durable_worker` runs, and what they do beside jobs.
- `outage`: riding out a Redis or database outage.

RQ's public API is used wherever it serves; where it does not (a job hash saved by a script,
the intermediate queue, the idle dequeue), the code says so and names the RQ version it was
checked against (rq 3.0.0).

The database holds every wake-up time; Redis only carries nudges, so losing Redis loses nothing
the sweep cannot rebuild.
"""

from durable.rq.dispatch import dispatch, dispatch_many

__all__ = ["dispatch", "dispatch_many"]
