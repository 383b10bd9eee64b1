"""Real processes: redis-server, durable workers, SQLite (and PostgreSQL in its tier).

Bounds are for correctness, not speed: lease 3 s, sweep every 1 s.
"""

import itertools
import json
import time

import pytest

from durable.client import get_execution, send_callback_success, start_execution
from durable.models import Execution, HistoryEvent, Operation
from tests import workflows
from tests.processes import blocked_on_the_queue, wait_until

pytestmark = [pytest.mark.processes, pytest.mark.timeout(90)]


def finished(execution_id: str) -> Execution | None:
    execution = get_execution(execution_id)
    return execution if execution.status != "RUNNING" else None


def pending_callback(execution_id: str) -> str | None:
    return (
        Operation.objects.filter(execution_id=execution_id, type="CALLBACK", status="STARTED")
        .values_list("callback_id", flat=True)
        .first()
    )


def test_a_timer_never_fires_early_and_fires_soon_after(workers):
    workers(1)
    execution = start_execution(workflows.timed, {"seconds": 2})
    done = wait_until(lambda: finished(execution.pk), 30, message="the timed execution")
    assert done.status == "SUCCEEDED", done.error
    result = json.loads(done.result)
    slept = result["after"] - result["before"]
    assert slept >= 2.0  # never early
    assert slept < 2.0 + 2.0  # the wait, then the timer thread and an invocation, with slack
    wait = Operation.objects.get(execution_id=execution.pk, name="timer")
    assert wait.status == "SUCCEEDED"


def test_send_callback_success_resumes_a_suspended_execution(workers):
    workers(1)
    execution = start_execution(workflows.approval, {})
    callback_id = wait_until(lambda: pending_callback(execution.pk), 30, message="the callback")
    wait_until(lambda: Execution.objects.filter(pk=execution.pk, lease_token__isnull=True).exists(), 10)
    sent = time.time()
    send_callback_success(callback_id, "approved")
    done = wait_until(lambda: finished(execution.pk), 10, message="resumption")
    result = json.loads(done.result)
    assert result["value"] == "approved"
    assert result["resumed_at"] - sent < 5


def test_a_killed_worker_hands_over_and_no_completed_step_runs_again(workers):
    first, second = workers(2)
    execution = start_execution(workflows.slow_steps, {"tag": "kill", "sleep": 30})
    wait_until(lambda: workflows.runs("kill", "slow-start") == 1, 30, message="the slow step to start")
    owner = Execution.objects.get(pk=execution.pk).lease_owner
    victim = next(w for w in (first, second) if w.name in w.output() and _runs_job(w, owner))
    killed_at = time.monotonic()
    victim.kill()
    done = wait_until(lambda: finished(execution.pk), 40, message="completion on the other worker")
    took = time.monotonic() - killed_at
    assert done.status == "SUCCEEDED", done.error
    assert took < 3 + 1 + 10  # lease expiry + one sweep interval + slack
    assert workflows.runs("kill", "first") == 1  # completed before the kill: never again
    assert workflows.runs("kill", "slow-start") == 2  # interrupted, so run again (at least once)
    assert workflows.runs("kill", "third") == 1
    execution = Execution.objects.get(pk=execution.pk)
    assert execution.consecutive_deaths == 0  # reset once an invocation finished normally


def _runs_job(worker, owner: str) -> bool:
    from tests.processes import descendants

    pid = int(owner.rsplit(":", 1)[1])
    return pid in descendants(worker.process.pid)


def test_a_wake_up_delivered_twice_at_once_runs_one_invocation_at_a_time(workers, redis_server):
    workers(2)
    from durable.rq.jobs import invoke, queue

    execution = start_execution(workflows.slow_steps, {"tag": "twice", "sleep": 2, "slow_runs": 99})
    # Two more deliveries of the same wake-up, under different job ids, at the same moment.
    for suffix in ("a", "b"):
        queue().enqueue(invoke, str(execution.pk), job_id=f"dup-{execution.pk}-{suffix}", result_ttl=60)
    done = wait_until(lambda: finished(execution.pk), 40, message="the execution")
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == {"first": 1, "second": 1, "third": 1}
    assert workflows.runs("twice", "slow-start") == 1
    spans = [
        (e.details["StartTimestamp"], e.details["EndTimestamp"])
        for e in HistoryEvent.objects.filter(execution_id=execution.pk, event_type="InvocationCompleted")
    ]
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, f"invocations overlapped: {spans}"


def test_flushing_redis_loses_nothing(workers, redis_server):
    workers(2)
    timers = [start_execution(workflows.timed, {"seconds": 4}) for _ in range(10)]
    waiting = [start_execution(workflows.approval, {}) for _ in range(10)]
    callback_ids = [wait_until(lambda e=e: pending_callback(e.pk), 30, message="callbacks") for e in waiting]
    wait_until(lambda: Operation.objects.filter(execution__in=timers, name="timer").count() == 10, 30, message="timers")
    redis_server.client().flushall()  # every scheduled wake-up is gone
    for callback_id in callback_ids:
        send_callback_success(callback_id, "after the flush")
    for execution in [*timers, *waiting]:
        done = wait_until(lambda e=execution: finished(e.pk), 40, message="every execution to end")
        assert done.status == "SUCCEEDED", done.error


def test_a_step_past_the_invocation_budget_is_stopped_and_resumes_from_the_last_checkpoint(workers):
    workers(1)
    started = time.monotonic()
    execution = start_execution(workflows.overruns_budget, {"tag": "budget", "sleep": 60})
    done = wait_until(lambda: finished(execution.pk), 40, message="the execution")
    assert done.status == "SUCCEEDED", done.error
    assert time.monotonic() - started < 30  # the 60 s sleep was cut short at the 2 s budget
    assert workflows.runs("budget", "first") == 1
    assert workflows.runs("budget", "slow-start") == 2
    assert workflows.runs("budget", "slow-end") == 1
    events = [e.event_type for e in HistoryEvent.objects.filter(execution_id=execution.pk).order_by("id")]
    assert events.count("InvocationCompleted") >= 1


def test_other_rq_jobs_on_the_queue_run_beside_invocations_and_leave_nothing_behind(workers, redis_server):
    from durable.rq.jobs import queue

    def plain(value: str) -> None:
        queue().enqueue("tests.processes.record_in_redis", "plain-jobs", value, result_ttl=0)

    client = redis_server.client()
    # A mix queued before the worker starts (its one-script dequeue) ...
    plain("before-1")
    first = [str(start_execution(workflows.three_steps, {}).pk) for _ in range(3)]
    plain("before-2")
    workers(1)
    wait_until(lambda: all(finished(e) for e in first), 30, message="the first executions")
    # ... and each alone into an idle worker (its blocking wait).
    # The worker is idle once it blocks on the empty queue (BLMOVE).
    wait_until(lambda: blocked_on_the_queue(client) >= 1, 10, message="a worker blocked on BLMOVE")
    plain("idle-1")
    wait_until(lambda: client.llen("plain-jobs") == 3, 10, message="the job sent to an idle worker")
    later = str(start_execution(workflows.three_steps, {}).pk)
    wait_until(lambda: finished(later), 30, message="an execution sent to an idle worker")
    assert [v.decode() for v in client.lrange("plain-jobs", 0, -1)] == ["before-1", "before-2", "idle-1"]
    for execution_id in [*first, later]:
        assert get_execution(execution_id).status == "SUCCEEDED"
        assert Operation.objects.filter(execution_id=execution_id, status="SUCCEEDED").count() == 3
    # Finished jobs' hashes expire within FINISHED_JOB_KEEP_MS (a sweep's late re-dispatch is
    # absorbed meanwhile), and at most the last one stays in RQ's intermediate queue, its hash
    # kept, until the next dequeue.
    from durable.rq.worker import FINISHED_JOB_KEEP_MS

    assert len(client.lrange(queue().intermediate_queue_key, 0, -1)) <= 1
    ttls = [client.pttl(key) for key in client.scan_iter("rq:job:durable-*")]
    assert ttls.count(-1) <= 1, ttls
    assert all(ttl <= FINISHED_JOB_KEEP_MS for ttl in ttls), ttls


@pytest.mark.parametrize("rq_scheduler", [False, True])
def test_rq_scheduler_runs_only_when_asked_for(workers, redis_server, rq_scheduler):
    # Durable timers never need RQ's scheduler (they fire through our timers set either way);
    # plain RQ jobs scheduled for later need it, so it is there for projects that ask for it.
    from datetime import timedelta

    from durable.rq.jobs import queue

    queue().enqueue_in(timedelta(seconds=1), "tests.processes.record_in_redis", "scheduled", "x", result_ttl=0)
    workers(1, args=["--with-rq-scheduler"] if rq_scheduler else [])
    timed = start_execution(workflows.timed, {"seconds": 3})
    wait_until(lambda: finished(timed.pk), 30, message="a durable timer, with or without RQ's scheduler")
    assert get_execution(timed.pk).status == "SUCCEEDED"
    # Three seconds after the durable timer began, the plain job was due two seconds ago.
    assert redis_server.client().llen("scheduled") == (1 if rq_scheduler else 0)
