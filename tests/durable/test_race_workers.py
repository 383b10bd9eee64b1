"""context.race with real processes: redis-server, durable workers, SQLite (PostgreSQL in its tier)."""

import json
import time

import pytest

from durable.client import get_execution, send_callback_success, start_execution
from durable.exceptions import CallbackAlreadyCompletedError
from durable.models import Execution, Operation
from tests import workflows
from tests.processes import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.timeout(90)]


def finished(execution_id) -> Execution | None:
    execution = get_execution(execution_id)
    return execution if execution.status != "RUNNING" else None


def pending_callback(execution_id) -> str | None:
    return (
        Operation.objects.filter(execution_id=execution_id, type="CALLBACK", status="STARTED")
        .values_list("callback_id", flat=True)
        .first()
    )


def timer_waiting(execution_id) -> bool:
    return Operation.objects.filter(execution_id=execution_id, name="timer", type="WAIT", status="STARTED").exists()


def test_a_callback_before_the_timer_wins_and_cancels_the_timer(workers):
    workers(1)
    execution = start_execution(workflows.approval_or_timer, {"seconds": 30})
    callback_id = wait_until(lambda: pending_callback(execution.pk), 30, message="the callback")
    # The branches run in order: a completion that lands before the approval branch reads its
    # callback wins before the timer branch starts (test_race.py's settles-at-once test), so
    # this test sends it once the timer is waiting too.
    wait_until(lambda: timer_waiting(execution.pk), 30, message="the timer branch to wait")
    sent = time.time()
    send_callback_success(callback_id, "approved")
    done = wait_until(lambda: finished(execution.pk), 20, message="the race to end")
    result = json.loads(done.result)
    assert (result["winner"], result["value"]) == ("approval", "approved")
    assert result["ended_at"] - sent < 5  # not the 30 s timer
    assert Operation.objects.get(execution_id=execution.pk, name="timer", type="WAIT").status == "CANCELLED"


def test_the_timer_wins_when_no_callback_comes(workers):
    workers(1)
    execution = start_execution(workflows.approval_or_timer, {"seconds": 2})
    callback_id = wait_until(lambda: pending_callback(execution.pk), 30, message="the callback")
    done = wait_until(lambda: finished(execution.pk), 30, message="the timer to win")
    assert json.loads(done.result)["winner"] == "timer"
    with pytest.raises(CallbackAlreadyCompletedError):
        send_callback_success(callback_id, "too late")
