"""context.parallel on the time-skipping runner over the real engine: branch names, the default
policy (every branch must succeed), concurrency, suspension, and bad input."""

import json
import threading
import time

import pytest

from durable import (
    CompletionConfig,
    DurableContext,
    ParallelBranch,
    ParallelConfig,
    ValidationError,
    durable_execution,
    durable_parallel_branch,
)
from durable.config import Duration
from durable.exceptions import ChildContextError
from durable.identifier import operation_id
from durable.models import Operation
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db


def run(handler):
    with DurableTestRunner(handler) as runner:
        return runner.run(input="{}")


@durable_parallel_branch(name="profile")
def load_profile(context: DurableContext, user: str) -> dict:
    return context.step(lambda _: {"user": user}, name="load profile")


@durable_parallel_branch()
def load_orders(context: DurableContext, user: str) -> list:
    context.wait(Duration(30), name="throttle")
    return context.step(lambda _: [f"{user}-1"], name="load orders")


def test_branches_are_named_child_contexts_keyed_by_index_and_results_come_in_branch_order():
    @durable_execution
    def handler(event, context: DurableContext):
        result = context.parallel(
            [
                load_profile("ann"),
                load_orders("ann"),
                ParallelBranch(lambda ctx: "flag", name="flags"),
                lambda ctx: 42,
            ],
            name="dashboard",
        )
        return {"results": result.get_results(), "reason": result.completion_reason.value}

    done = run(handler)
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == {
        "results": [{"user": "ann"}, ["ann-1"], "flag", 42],
        "reason": "ALL_COMPLETED",
    }
    rows = Operation.objects.filter(execution_id=done.execution_id)
    batch = rows.get(sub_type="Parallel")
    assert (batch.type, batch.name) == ("CONTEXT", "dashboard")
    branches = {o.name: o.operation_id for o in rows.filter(sub_type="ParallelBranch")}
    assert branches == {
        "profile": operation_id(batch.operation_id, 0),
        "parallel-branch-1": operation_id(batch.operation_id, 1),
        "flags": operation_id(batch.operation_id, 2),
        "parallel-branch-3": operation_id(batch.operation_id, 3),
    }
    assert json.loads(batch.result)["type"] == "ParallelResult"


def test_by_default_one_failed_branch_fails_the_parallel_and_the_rest_are_not_started():
    started = []

    def branch(name, fails=False):
        def run_branch(ctx):
            started.append(name)
            if fails:
                raise PermissionError(name)
            return name

        return run_branch

    @durable_execution
    def handler(event, context: DurableContext):
        result = context.parallel(
            [branch("a"), branch("b", fails=True), branch("c")], config=ParallelConfig(max_concurrency=1)
        )
        try:
            result.throw_if_error()
        except ChildContextError as exc:
            return [result.completion_reason.value, result.total_count, exc.error_type, exc.message]

    done = run(handler)
    assert json.loads(done.result) == ["FAILURE_TOLERANCE_EXCEEDED", 2, "PermissionError", "b"]
    assert started == ["a", "b"]


def test_all_completed_runs_every_branch_even_after_failures():
    @durable_execution
    def handler(event, context: DurableContext):
        def bad(ctx):
            raise ValueError("bad")

        config = ParallelConfig(completion_config=CompletionConfig.all_completed())
        result = context.parallel([bad, lambda ctx: 1, bad, lambda ctx: 2], config=config)
        return [result.get_results(), result.failure_count, result.status.value]

    assert json.loads(run(handler).result) == [[1, 2], 2, "FAILED"]


def test_branches_run_concurrently_up_to_max_concurrency():
    ready = threading.Condition()
    seen = {"now": 0, "peak": 0}

    def branch(ctx):
        def work(_):
            with ready:  # the first two wait (3 s at most) until both run at once
                seen["now"] += 1
                seen["peak"] = max(seen["peak"], seen["now"])
                ready.notify_all()
                ready.wait_for(lambda: seen["peak"] >= 2, timeout=3)
            time.sleep(0.01)
            with ready:
                seen["now"] -= 1

        ctx.step(work, name="work")

    @durable_execution
    def handler(event, context: DurableContext):
        context.parallel([branch] * 6, config=ParallelConfig(max_concurrency=2))

    assert run(handler).status == "SUCCEEDED"
    assert seen["peak"] == 2  # two at once, never three


def test_a_suspended_branch_keeps_its_slot_until_it_ends():
    @durable_execution
    def handler(event, context: DurableContext):
        def sleeper(ctx):
            ctx.wait(Duration(60), name="long")
            return "slept"

        config = ParallelConfig(max_concurrency=1)
        return context.parallel([sleeper, lambda ctx: "second"], name="slots", config=config).get_results()

    with DurableTestRunner(handler) as runner:
        execution_id = runner.run_async(input="{}")
        runner.step_once(execution_id)
        names = set(Operation.objects.filter(execution_id=execution_id).values_list("name", flat=True))
        assert "parallel-branch-1" not in names  # the second branch waits for the slot
        done = runner.wait_for_result(execution_id)
    assert json.loads(done.result) == ["slept", "second"]


def test_a_branch_that_is_not_callable_is_refused():
    @durable_execution
    def handler(event, context: DurableContext):
        try:
            context.parallel([lambda ctx: 1, "not a function"])
        except ValidationError as exc:
            return str(exc)

    assert "branch 1" in json.loads(run(handler).result)
