"""Recovery within the README's bound, with real worker processes and a real Redis.

A sweeper killed while it holds the sweep lock hands the sweep on within one interval; a Redis
restart ends no worker process. (The database restart is in tests/chaos: it needs PostgreSQL.)
Workers here: lease 3 s, sweep every 1 s.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime

import pytest

from durable import DurableContext, durable_execution
from durable.client import get_execution, start_execution
from durable.models import HistoryEvent, Operation
from durable.sweep import LOCK_KEY
from tests.processes import blocked_on_the_queue, wait_until

pytestmark = [pytest.mark.processes, pytest.mark.timeout(120)]

LEASE_SECONDS = 3  # the workers fixture's
SWEEP_INTERVAL = 1


@durable_execution
def reports_its_worker(event: dict, context: DurableContext) -> int:
    """Returns the pid of the worker process that ran its step (after holding it a while)."""
    return context.step(lambda _: time.sleep(event.get("sleep", 0)) or os.getpid(), name="pid")


def finished(execution_id: str):
    execution = get_execution(execution_id)
    return execution if execution.status != "RUNNING" else None


def started_late_by(execution_id: str) -> float:
    """How long after it was due the execution's first completed invocation started."""
    details = HistoryEvent.objects.get(execution_id=execution_id, event_type="InvocationCompleted").details
    due = datetime.fromisoformat(details["DueTimestamp"])
    return (datetime.fromisoformat(details["StartTimestamp"]) - due).total_seconds()


def test_a_sweeper_killed_holding_the_sweep_lock_hands_the_sweep_on_within_one_interval(
    workers, redis_server, settings
):
    pool = workers(2)
    client = redis_server.client()
    wait_until(lambda: blocked_on_the_queue(client) == 2, 30, message="both workers idle")
    pids = {pid: worker for worker in pool for pid in worker.worker_pids()}

    def held_with_time_left() -> tuple[str, int] | None:
        value, ttl = client.pipeline().get(LOCK_KEY).pttl(LOCK_KEY).execute()
        return (value.decode(), ttl) if value is not None and ttl > 300 else None  # still held when the kill lands

    value, ttl = wait_until(held_with_time_left, 30, interval=0.01, message="a worker holding the sweep lock")
    # Whoever holds it, whatever it is doing: killed now, it holds up sweeping one interval at most.
    assert ttl <= SWEEP_INTERVAL * 1000, f"the sweep lock lives {ttl} ms more; its holder may die meanwhile"
    # The lock names its holder: "<host>:<pid> <token>" while it sweeps, "done <host>:<pid>" after.
    holder = value.removeprefix("done ").split(" ")[0]
    victim = pids[int(holder.rsplit(":", 1)[1])]
    survivor = next(worker for worker in pool if worker is not victim)
    victim.kill()
    assert client.get(LOCK_KEY) in (None, value.encode())  # held by the dead worker to the end

    # Due now, with no wake-up in Redis: only a sweep can start it, and only the survivor sweeps.
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "DISPATCHER": None}
    execution = start_execution(reports_its_worker, {})
    done = wait_until(lambda: finished(execution.pk), 30, message="the survivor's sweep to start it")
    assert done.status == "SUCCEEDED", done.error
    assert int(done.result) in survivor.worker_pids()
    # The README's bound for a hand-over: the lease (none to wait for here) plus one interval.
    late = started_late_by(execution.pk)
    assert late <= LEASE_SECONDS + SWEEP_INTERVAL, f"started {late:.2f} s after it was due"


def test_a_redis_restart_ends_no_worker_process_and_each_runs_new_work(workers, redis_server):
    pool = workers(2)
    client = redis_server.client()
    wait_until(lambda: blocked_on_the_queue(client) == 2, 30, message="both workers idle")
    before = {pid for worker in pool for pid in worker.worker_pids()}
    assert len(before) == 2

    redis_server.restart()  # empty: queue, locks, worker registrations all gone
    client = redis_server.client()
    wait_until(lambda: blocked_on_the_queue(client) == 2, 30, message="both workers waiting on the new Redis")
    # Each step holds its worker a while, so the second execution goes to the other worker.
    executions = [start_execution(reports_its_worker, {"sleep": 0.5}) for _ in range(2)]
    results = set()
    for execution in executions:
        done = wait_until(lambda e=execution: finished(e.pk), 30, message="new work after the restart")
        assert done.status == "SUCCEEDED", done.error
        results.add(int(done.result))

    after = {pid for worker in pool for pid in worker.worker_pids()}
    assert after == before, "a worker process exited and its supervisor started another"
    assert results == before  # both of them took new work
    for worker in pool:
        output = worker.output()
        assert "Redis is unreachable" in output
        assert "Redis is reachable again" in output
        assert "quitting" not in output
        # Registered again in the new Redis, where RQ's tools look for workers.
        assert worker.process.poll() is None
    registered = {name.decode() for name in client.smembers("rq:workers")}
    assert len(registered) == 2, registered


def test_a_worker_told_to_stop_mid_invocation_finishes_it_then_exits(workers):
    from tests import workflows

    [worker] = workers(1)
    execution = start_execution(workflows.slow_steps, {"tag": "drain", "sleep": 2})
    wait_until(lambda: workflows.runs("drain", "slow-start") == 1, 30, message="the slow step to start")
    worker.process.send_signal(signal.SIGTERM)  # the supervisor passes it on to its worker
    wait_until(lambda: worker.process.poll() is not None, 30, message="the worker to exit")
    assert worker.process.returncode == 0
    done = get_execution(execution.pk)
    assert done.status == "SUCCEEDED", done.error  # the step was not interrupted, nor retried
    assert workflows.runs("drain", "slow-start") == 1
    assert Operation.objects.get(execution_id=execution.pk, name="slow").attempt == 1
