"""Map with real processes: redis-server, durable workers, SQLite (and PostgreSQL in its tier).

A worker SIGKILLed in the middle of a map loses no completed item, and a map of many items
each waiting on its own callback completes when the callbacks arrive in random order
(MAP_CALLBACK_ITEMS items, 100 by default); both with each NestingType (a FLAT item's end is
re-derived from its step by the worker that takes over).
"""

import json
import os
import random

import pytest

from durable.client import get_execution, send_callback_success, start_execution
from durable.models import Execution, Operation
from tests.durable import map_workflows
from tests.processes import descendants, wait_until
from tests.workflows import runs

pytestmark = [pytest.mark.processes, pytest.mark.timeout(240)]

CALLBACK_ITEMS = int(os.environ.get("MAP_CALLBACK_ITEMS", "100"))


def finished(execution_id):
    execution = get_execution(execution_id)
    return execution if execution.status != "RUNNING" else None


def completed_items(execution_id) -> set[int]:
    """The items whose step (each item's last operation) succeeded."""
    names = Operation.objects.filter(
        execution_id=execution_id, type="STEP", name__startswith="work ", status="SUCCEEDED"
    ).values_list("name", flat=True)
    return {int(name.rsplit(" ", 1)[1]) for name in names}


@pytest.mark.parametrize("nesting", ["NESTED", "FLAT"])
def test_a_worker_killed_in_the_middle_of_a_map_loses_no_completed_item(workers, nesting):
    first, second = workers(2)
    count = 16
    event = {"tag": "mapkill", "count": count, "concurrency": 4, "sleep": 0.5, "nesting": nesting}
    execution = start_execution(map_workflows.slow_items, event)
    wait_until(lambda: len(completed_items(execution.pk)) >= 5, 60, message="five items to complete")
    owner = Execution.objects.get(pk=execution.pk).lease_owner
    assert owner, "the map is running under a lease"
    pid = int(owner.rsplit(":", 1)[1])
    victim = next(w for w in (first, second) if pid in descendants(w.process.pid))
    done_before = completed_items(execution.pk)  # read before the kill: all were completed then
    victim.kill()
    done = wait_until(lambda: finished(execution.pk), 90, message="the map to complete on the other worker")
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == [i * i for i in range(count)]
    assert len(done_before) < count  # the kill came in the middle of the map
    for index in done_before:
        assert runs("mapkill", f"item{index}") == 1, f"completed item {index} ran again after the kill"
    for index in range(count):
        assert 1 <= runs("mapkill", f"item{index}") <= 2  # an item cut by the kill runs again, once
    assert completed_items(execution.pk) == set(range(count))
    contexts = Operation.objects.filter(execution_id=execution.pk, sub_type="MapIteration", status="SUCCEEDED")
    assert contexts.count() == (count if nesting == "NESTED" else 0)


@pytest.mark.parametrize("nesting", ["NESTED", "FLAT"])
def test_a_map_of_items_each_waiting_on_its_own_callback_completes_whatever_order_they_arrive_in(workers, nesting):
    workers(2)
    execution = start_execution(map_workflows.approvals, {"tag": "mapcb", "count": CALLBACK_ITEMS, "nesting": nesting})

    def pending() -> dict[str, str] | None:
        found = dict(
            Operation.objects.filter(execution_id=execution.pk, type="CALLBACK", status="STARTED").values_list(
                "name", "callback_id"
            )
        )
        return found if len(found) == CALLBACK_ITEMS else None

    callbacks = wait_until(pending, 120, interval=0.2, message=f"{CALLBACK_ITEMS} pending callbacks")
    order = list(range(CALLBACK_ITEMS))
    random.Random(CALLBACK_ITEMS).shuffle(order)
    for index in order:
        send_callback_success(callbacks[f"approval {index} create callback id"], f"ok{index}")
    done = wait_until(lambda: finished(execution.pk), 180, interval=0.2, message="the map to complete")
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == [f"{i}:ok{i}" for i in range(CALLBACK_ITEMS)]
    assert all(runs("mapcb", f"after{i}") == 1 for i in range(CALLBACK_ITEMS))
