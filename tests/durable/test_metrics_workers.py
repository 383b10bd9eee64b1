"""Metrics and liveness with real worker processes: counters of two worker processes added up by
`/metrics` in multiprocess mode, and `durable_worker --check` against a running and a gone worker."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from durable.client import get_execution, send_callback_success, start_execution
from durable.models import Execution, Operation
from tests import workflows
from tests.durable.metrics_helpers import scrape
from tests.processes import ROOT, wait_until

pytestmark = [pytest.mark.processes, pytest.mark.timeout(120)]

THREE_STEPS = "tests.workflows.three_steps"


def all_ended(execution_ids) -> bool:
    return all(get_execution(pk).status != "RUNNING" for pk in execution_ids)


def test_counters_of_two_worker_processes_add_up(workers, client, settings, tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    settings.DURABLE = {**settings.DURABLE, "METRICS_MULTIPROC_DIR": str(directory)}

    (first,) = workers(1, PROMETHEUS_MULTIPROC_DIR=str(directory))
    early = [start_execution(workflows.three_steps, {"n": i}).pk for i in range(3)]
    wait_until(lambda: all_ended(early), 30, message="the first worker's executions")
    first.stop()  # its counters stay in the directory

    workers(1, PROMETHEUS_MULTIPROC_DIR=str(directory))  # a second worker process
    late = [start_execution(workflows.three_steps, {"n": i}).pk for i in range(2)]
    flaky = start_execution(workflows.flaky_then_waits, {"seconds": 1}).pk
    approval = start_execution(workflows.approval, {}).pk
    callback_id = wait_until(
        lambda: (
            Operation.objects.filter(execution_id=approval, type="CALLBACK", status="STARTED")
            .values_list("callback_id", flat=True)
            .first()
        ),
        30,
        message="the callback",
    )
    wait_until(lambda: Execution.objects.filter(pk=approval, lease_token__isnull=True).exists(), 10)
    waiting = scrape(client, settings)
    assert waiting["durable_callbacks_waiting"] == 1
    assert waiting["durable_executions_waiting", {"waiting_for": "callback"}] == 1
    send_callback_success(callback_id, "approved")
    wait_until(lambda: all_ended([*late, flaky, approval]), 30, message="the second worker's executions")

    found = scrape(client, settings)
    for pk in [*early, *late, flaky, approval]:
        assert get_execution(pk).status == "SUCCEEDED"
    # Both processes' files are read: three executions of the first worker, two of the second.
    assert found["durable_executions_ended_total", {"function": THREE_STEPS, "status": "SUCCEEDED"}] == 5
    assert found["durable_invocations_total", {"function": THREE_STEPS, "outcome": "SUCCEEDED"}] == 5
    assert found["durable_step_duration_seconds_count", {"step": "s0"}] == 5
    assert found["durable_step_retries_total", {"step": "flaky"}] == 1
    assert found["durable_timer_lateness_seconds_count", {"kind": "retry"}] == 1
    assert found["durable_timer_lateness_seconds_count", {"kind": "wait"}] == 1
    assert found["durable_timer_lateness_seconds_sum", {"kind": "wait"}] < 2.0  # a 20 ms timer poll, with slack
    assert found["durable_callback_resume_seconds_count"] == 1
    assert found["durable_callback_resume_seconds_sum"] < 5.0
    assert found["durable_sweep_duration_seconds_count"] >= 1  # the workers sweep every second
    assert found["durable_executions_running"] == 0
    assert found["durable_callbacks_waiting"] == 0
    writers = {path.stem.split("_", 1)[1] for path in directory.glob("counter_*.db")}
    assert len(writers) >= 2, writers  # at least the two worker processes


def run_check(beat: Path, max_age: float = 4) -> int:
    env = {
        **os.environ,
        "DURABLE_WORKER_HEARTBEAT_FILE": str(beat),
        "DURABLE_WORKER_HEARTBEAT_MAX_AGE": str(max_age),
    }
    command = [sys.executable, str(ROOT / "manage.py"), "durable_worker", "--check"]
    return subprocess.run(command, env=env, capture_output=True, timeout=60).returncode


def test_the_liveness_check_follows_a_running_worker_and_its_stop(workers, tmp_path):
    beat = tmp_path / "worker.heartbeat"
    assert run_check(beat) == 1  # no worker yet
    (worker,) = workers(1, DURABLE_WORKER_HEARTBEAT_FILE=str(beat))
    wait_until(lambda: run_check(beat) == 0, 30, interval=0.2, message="a fresh heartbeat")
    time.sleep(5)  # longer than the check's limit: the running worker keeps it fresh
    assert run_check(beat) == 0
    worker.stop()
    assert run_check(beat) == 1  # a clean stop says so at once


def test_a_killed_worker_goes_stale(workers, tmp_path):
    beat = tmp_path / "worker.heartbeat"
    (worker,) = workers(1, DURABLE_WORKER_HEARTBEAT_FILE=str(beat))
    wait_until(lambda: run_check(beat) == 0, 30, interval=0.2, message="a fresh heartbeat")
    worker.kill()  # nothing cleans up: the file stays, and ages
    assert beat.exists()
    wait_until(lambda: run_check(beat, max_age=3) == 1, 20, interval=0.5, message="a stale heartbeat")
