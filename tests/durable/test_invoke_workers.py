"""context.invoke with real processes: redis-server, durable workers, SQLite (PostgreSQL in its tier)."""

import json
import time

import pytest

from durable.client import get_execution, start_execution, stop_execution
from durable.models import Execution, Operation
from tests import workflows
from tests.processes import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.timeout(90)]


def finished(execution_id) -> Execution | None:
    execution = get_execution(execution_id)
    return execution if execution.status != "RUNNING" else None


def test_a_parent_invokes_a_child_that_waits_on_a_timer_and_completes(workers):
    workers(2)
    parent = start_execution(workflows.invokes_timed, {"seconds": 2})
    done = wait_until(lambda: finished(parent.pk), 30, message="the parent to finish")
    assert done.status == "SUCCEEDED", done.error
    result = json.loads(done.result)
    child = Execution.objects.get(parent_execution_id=parent.pk)
    assert child.status == "SUCCEEDED"
    assert child.function_name == "tests.workflows.timed"
    assert result["child"] == json.loads(child.result)
    assert result["child"]["after"] - result["child"]["before"] >= 2.0  # the child's timer, never early
    # The child's end woke the parent through the engine's dispatch, not a sweep or a poll.
    assert result["done_at"] - result["child"]["after"] < 1.5
    op = Operation.objects.get(execution_id=parent.pk, name="timed child")
    assert (op.status, op.child_execution_id) == ("SUCCEEDED", child.pk)
    assert Execution.objects.filter(parent_execution_id=parent.pk).count() == 1


def test_the_sweep_recovers_a_parent_whose_wake_up_was_lost(workers, settings):
    workers(1)
    parent = start_execution(workflows.invokes_approval, {})
    child = wait_until(
        lambda: Operation.objects.filter(
            execution__parent_execution_id=parent.pk, type="CALLBACK", status="STARTED"
        ).first(),
        30,
        message="the child's callback",
    )
    # The child is stopped where nothing dispatches: the parent's wake-up exists only in the
    # database, and the sweep (every second in the workers) must find it.
    settings.DURABLE = {**settings.DURABLE, "DISPATCHER": None}
    stopped_at = time.monotonic()
    stop_execution(child.execution_id, error={"ErrorType": "Cancelled", "ErrorMessage": "not needed"})
    done = wait_until(lambda: finished(parent.pk), 20, message="the parent to be woken by the sweep")
    assert time.monotonic() - stopped_at < 1 + 3 + 2  # one sweep interval (lease 3 s), with slack
    assert json.loads(done.result) == {"error_type": "Cancelled", "message": "not needed"}
