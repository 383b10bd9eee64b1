"""The timer mover alone, on a real Redis: how long after the moment it is due to be queued (its
time less the mover's lead, TIMER_LEAD_MS) a wake-up lands in the queue.

A timer thread (`durable.rq.timers.TimerPoller`, as a worker runs it) moves wake-ups scheduled at
random times 50 to 100 ms ahead, one every 5 to 30 ms; a consumer in another process takes them
off the queue and notes when each arrived. With --busy, this process's main thread runs Python
code meanwhile, as a worker's does while it runs an invocation (the timer thread then waits for
the GIL). No database is involved: bench/workers.py measures the whole path to the next step.

Usage: python bench/timer_mover.py [--timers 200] [--busy]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_CONSUMER = """
import json, sys, time
import redis
client, key, out = redis.Redis.from_url(sys.argv[1]), sys.argv[2], {}
while (taken := client.blpop([key], 3)) is not None:
    out[taken[1].decode()] = time.time()
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timers", type=int, default=200)
    parser.add_argument("--busy", action="store_true", help="keep this process's main thread running Python code")
    args = parser.parse_args()

    from tests.processes import RedisServer

    redis_server = RedisServer().start()
    workdir = tempfile.mkdtemp(prefix="bench-timer-mover-")
    os.environ.update(
        REDIS_URL=redis_server.url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"sqlite:///{os.path.join(workdir, 'unused.sqlite3')}",
        DJANGO_DEBUG="false",
    )
    import django

    django.setup()
    from durable.rq.dispatch import schedule_wake_ups
    from durable.rq.jobs import queue
    from durable.rq.timers import TimerPoller, timer_lead

    try:
        consumer = subprocess.Popen(
            [sys.executable, "-c", _CONSUMER, redis_server.url, queue().key], stdout=subprocess.PIPE, text=True
        )
        mover = TimerPoller(queue().connection, "bench")
        mover.start()
        stop = threading.Event()

        def busy() -> None:
            while not stop.is_set():
                sum(i * i for i in range(2000))

        if args.busy:
            threading.Thread(target=busy, daemon=True).start()
        time.sleep(1.0)  # the mover takes the lock
        rng = random.Random(1)
        due: dict[str, float] = {}
        for i in range(args.timers):
            when = time.time() + rng.uniform(0.05, 0.1)
            wake_up = f"durable-{i:036d}-{int(when * 1000)}"
            schedule_wake_ups({wake_up: when})
            due[wake_up] = when
            time.sleep(rng.uniform(0.005, 0.03))
        arrived = json.loads(consumer.communicate()[0])
        stop.set()
        mover.stop()
    finally:
        redis_server.stop()
    # The mover queues each wake-up TIMER_LEAD_MS before its time (the worker naps the rest):
    # lateness here is against that moment.
    lead = timer_lead()
    late = sorted((arrived[w] - (due[w] - lead)) * 1000 for w in due if w in arrived)
    print(
        f"{len(late)} of {len(due)} wake-ups{' (main thread busy)' if args.busy else ''}: late by "
        f"p50 {statistics.median(late):.2f} ms, p95 {late[int(0.95 * (len(late) - 1))]:.2f} ms, "
        f"max {late[-1]:.2f} ms, min {late[0]:.2f} ms (against {lead * 1000:g} ms before each one's time, "
        "the mover's lead)"
    )


if __name__ == "__main__":
    main()
