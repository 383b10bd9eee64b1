"""Differential tests of map and parallel: the official SDK and its testing runner as the oracle.

The method of test_official_port.py (each handler's source compiled once against the official
package and once against `durable`), for map and parallel: the same result, error type and
message, the same operations (type, sub type, name, status, ids, parents), and the same history
events (type, operation id, name, sub type, parent and details, payloads and times aside).
Items run concurrently on both runners, so events are compared as multisets, and handlers
whose outcome would depend on thread timing are not used here (test_map.py covers those).
"""

import json
import textwrap
import types

import pytest
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

from durable.testing import DurableTestRunner
from tests.durable.test_official_port import op_sequence

pytestmark = pytest.mark.django_db

PRELUDE = """
from {sdk}.config import (
    ChildConfig, CompletionConfig, CompletionOutcome, Duration, MapConfig, NestingType, ParallelBranch,
    ParallelConfig, StepConfig, WaitForCallbackConfig, complete_batch, continue_batch,
)
from {sdk}.context import DurableContext, durable_parallel_branch, durable_with_child_context
from {sdk}.concurrency.models import BatchCompletionError
from {sdk}.exceptions import ChildContextError, StepError
from {sdk}.execution import durable_execution
from {sdk}.retries import RetryPresets
NO_RETRY = StepConfig(retry_strategy=RetryPresets.none())
FLAT = NestingType.FLAT

def summary(result):
    return {{
        "statuses": [item.status.value for item in result.all],
        "results": result.get_results(),
        "errors": [[e.type.rsplit(".", 1)[-1], e.message] for e in result.get_errors()],
        "reason": result.completion_reason.value,
        "counts": [result.success_count, result.failure_count, result.started_count, result.total_count],
        "status": result.status.value,
    }}
"""

HANDLERS = {
    "map_steps": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, x, index, items):
        return ctx.step(lambda _: x * 10 + index, name="times ten")
    config = MapConfig(max_concurrency=2, item_namer=lambda x, i: f"number {x}")
    return summary(context.map([3, 1, 4, 1, 5], item, name="numbers", config=config))
""",
    "map_waits": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, seconds, index, items):
        ctx.wait(Duration(seconds), name="nap")
        return ctx.step(lambda _: seconds, name="woke")
    return summary(context.map([3, 1, 2], item, name="naps"))
""",
    "map_tolerated_failures": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, x, index, items):
        return ctx.step(lambda _: 10 // x, name="divide", config=NO_RETRY)
    config = MapConfig(max_concurrency=1, completion_config=CompletionConfig(tolerated_failure_count=1))
    return summary(context.map([1, 0, 2, 0, 5, 6], item, name="divisions", config=config))
""",
    "map_tolerated_percentage": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, x, index, items):
        if x == 0:
            raise ValueError("zero")
        return x
    config = MapConfig(max_concurrency=1, completion_config=CompletionConfig(tolerated_failure_percentage=25))
    return summary(context.map([1, 0, 2, 3, 0, 4, 5, 6], item, name="checks", config=config))
""",
    "map_first_successful": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, x, index, items):
        if x < 0:
            raise RuntimeError(f"bad {x}")
        return ctx.step(lambda _: x, name="take")
    config = MapConfig(max_concurrency=1, completion_config=CompletionConfig.first_successful())
    return summary(context.map([-1, 7, 8, 9], item, name="first", config=config))
""",
    "map_min_successful": """
@durable_execution
def handler(event, context: DurableContext):
    config = MapConfig(max_concurrency=1, completion_config=CompletionConfig(min_successful=2))
    return summary(context.map(["a", "b", "c"], lambda ctx, x, i, xs: x.upper(), name="two", config=config))
""",
    "map_all_completed": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, x, index, items):
        return ctx.step(lambda _: int(x), name="parse", config=NO_RETRY)
    config = MapConfig(completion_config=CompletionConfig.all_completed())
    return summary(context.map(["1", "x", "3"], item, name="parse all", config=config))
""",
    "map_empty": """
@durable_execution
def handler(event, context: DurableContext):
    return summary(context.map([], lambda ctx, x, i, xs: x, name="nothing"))
""",
    "map_unhandled_failure": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, x, index, items):
        return ctx.step(lambda _: {"k": 1}[x], name="lookup", config=NO_RETRY)
    context.map(["k", "missing"], item, name="lookups", config=MapConfig(max_concurrency=1)).throw_if_error()
""",
    "map_custom_completion": """
@durable_execution
def handler(event, context: DurableContext):
    def enough(status):
        if status.success_count >= 2:
            return complete_batch()
        if status.failure_count >= 2:
            return complete_batch(CompletionOutcome.FAILED)
        return continue_batch()
    config = MapConfig(max_concurrency=1, completion_config=CompletionConfig(should_complete=enough))
    good = summary(context.map([1, 2, 3, 4], lambda ctx, x, i, xs: x, name="good", config=config))
    def fail(ctx, x, i, xs):
        raise ValueError(x)
    bad = context.map([1, 2, 3], fail, name="bad", config=config)
    try:
        bad.throw_if_error()
    except ChildContextError as exc:
        raised = type(exc).__name__
    return {"good": good, "bad": summary(bad), "raised": raised}
""",
    "parallel_named_branches": """
@durable_parallel_branch(name="fetch user")
def fetch_user(ctx: DurableContext, user_id: str):
    return ctx.step(lambda _: {"id": user_id}, name="load user")

@durable_parallel_branch()
def fetch_orders(ctx: DurableContext, user_id: str):
    ctx.wait(Duration(2), name="rate limit")
    return ctx.step(lambda _: [user_id, "o1"], name="load orders")

@durable_execution
def handler(event, context: DurableContext):
    branches = [
        fetch_user("u1"),
        fetch_orders("u1"),
        ParallelBranch(func=lambda ctx: ctx.step(lambda _: "flag", name="load flag"), name="flags"),
        lambda ctx: ctx.step(lambda _: 42, name="answer"),
    ]
    return summary(context.parallel(branches, name="load", config=ParallelConfig(max_concurrency=2)))
""",
    "parallel_failure": """
@durable_execution
def handler(event, context: DurableContext):
    def broken(ctx):
        ctx.step(lambda _: [][1], name="index", config=NO_RETRY)
    result = context.parallel([lambda ctx: "ok", broken], name="pair", config=ParallelConfig(max_concurrency=1))
    try:
        result.throw_if_error()
    except ChildContextError as exc:
        return {"summary": summary(result), "raised": [type(exc).__name__, exc.error_type.rsplit(".", 1)[-1]]}
""",
    "parallel_with_a_map_inside": """
@durable_execution
def handler(event, context: DurableContext):
    def squares(ctx):
        return ctx.map([2, 3], lambda c, x, i, xs: c.step(lambda _: x * x, name="square"), name="squares").get_results()
    def child(ctx):
        return ctx.run_in_child_context(lambda c: c.step(lambda _: "deep", name="deep step"), name="deep")
    result = context.parallel([squares, child], name="mixed")
    return {"summary": summary(result), "after": context.step(lambda _: "after", name="after")}
""",
    "map_callbacks": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, x, index, items):
        value = ctx.wait_for_callback(lambda cid, _: None, name=f"approve {x}")
        return ctx.step(lambda _: f"{x}={value}", name="record")
    return summary(context.map(["a", "b", "c"], item, name="approvals"))
""",
    # NestingType.FLAT: no context per item; the items' operations are recorded under the batch.
    "flat_map_steps": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, x, index, items):
        first = ctx.step(lambda _: x * 10 + index, name="times ten")
        return ctx.step(lambda _: first + 1, name="plus one")
    config = MapConfig(max_concurrency=2, item_namer=lambda x, i: f"number {x}", nesting_type=FLAT)
    return summary(context.map([3, 1, 4, 1, 5], item, name="numbers", config=config))
""",
    "flat_map_waits": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, seconds, index, items):
        ctx.wait(Duration(seconds), name="nap")
        return ctx.step(lambda _: seconds, name="woke")
    return summary(context.map([3, 1, 2], item, name="naps", config=MapConfig(nesting_type=FLAT)))
""",
    "flat_map_tolerated_failures": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, x, index, items):
        return ctx.step(lambda _: 10 // x, name="divide", config=NO_RETRY)
    config = MapConfig(
        max_concurrency=1, completion_config=CompletionConfig(tolerated_failure_count=1), nesting_type=FLAT
    )
    return summary(context.map([1, 0, 2, 0, 5, 6], item, name="divisions", config=config))
""",
    "flat_map_first_successful": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, x, index, items):
        if x < 0:
            raise RuntimeError(f"bad {x}")
        return ctx.step(lambda _: x, name="take")
    config = MapConfig(max_concurrency=1, completion_config=CompletionConfig.first_successful(), nesting_type=FLAT)
    return summary(context.map([-1, 7, 8, 9], item, name="first", config=config))
""",
    "flat_map_min_successful_without_operations": """
@durable_execution
def handler(event, context: DurableContext):
    config = MapConfig(max_concurrency=1, completion_config=CompletionConfig(min_successful=2), nesting_type=FLAT)
    return summary(context.map(["a", "b", "c"], lambda ctx, x, i, xs: x.upper(), name="two", config=config))
""",
    "flat_map_unhandled_failure": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, x, index, items):
        return ctx.step(lambda _: {"k": 1}[x], name="lookup", config=NO_RETRY)
    config = MapConfig(max_concurrency=1, nesting_type=FLAT)
    context.map(["k", "missing"], item, name="lookups", config=config).throw_if_error()
""",
    "flat_map_callbacks": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, x, index, items):
        value = ctx.wait_for_callback(lambda cid, _: None, name=f"approve {x}")
        return ctx.step(lambda _: f"{x}={value}", name="record")
    return summary(context.map(["a", "b", "c"], item, name="approvals", config=MapConfig(nesting_type=FLAT)))
""",
    "flat_map_replayed_after_a_wait": """
@durable_execution
def handler(event, context: DurableContext):
    def item(ctx, x, index, items):
        ctx.wait(Duration(1), name="pause")
        return ctx.step(lambda _: 10 // x, name="divide", config=NO_RETRY)
    config = MapConfig(completion_config=CompletionConfig.all_completed(), nesting_type=FLAT)
    result = context.map([5, 0, 2], item, name="divisions", config=config)
    first = summary(result)
    context.wait(Duration(2), name="later")  # the map's end is replayed from here on
    return {"first": first, "after": context.step(lambda _: "after", name="after")}
""",
    "flat_parallel_named_branches": """
@durable_parallel_branch(name="fetch user")
def fetch_user(ctx: DurableContext, user_id: str):
    return ctx.step(lambda _: {"id": user_id}, name="load user")

@durable_parallel_branch()
def fetch_orders(ctx: DurableContext, user_id: str):
    ctx.wait(Duration(2), name="rate limit")
    return ctx.step(lambda _: [user_id, "o1"], name="load orders")

@durable_execution
def handler(event, context: DurableContext):
    branches = [
        fetch_user("u1"),
        fetch_orders("u1"),
        ParallelBranch(func=lambda ctx: ctx.step(lambda _: "flag", name="load flag"), name="flags"),
        lambda ctx: ctx.step(lambda _: 42, name="answer"),
    ]
    config = ParallelConfig(max_concurrency=2, nesting_type=FLAT)
    return summary(context.parallel(branches, name="load", config=config))
""",
    "flat_parallel_failure": """
@durable_execution
def handler(event, context: DurableContext):
    def broken(ctx):
        ctx.step(lambda _: [][1], name="index", config=NO_RETRY)
    config = ParallelConfig(max_concurrency=1, nesting_type=FLAT)
    result = context.parallel([lambda ctx: "ok", broken], name="pair", config=config)
    try:
        result.throw_if_error()
    except ChildContextError as exc:
        return {"summary": summary(result), "raised": [type(exc).__name__, exc.error_type.rsplit(".", 1)[-1]]}
""",
    "flat_parallel_first_successful_with_callbacks": """
@durable_execution
def handler(event, context: DurableContext):
    def ask(who):
        return lambda ctx: ctx.wait_for_callback(lambda cid, _: None, name=f"ask {who}")
    config = ParallelConfig(completion_config=CompletionConfig.first_successful(), nesting_type=FLAT)
    result = context.parallel([ask("x"), ask("y")], name="either", config=config)
    return {"statuses": [item.status.value for item in result.all], "reason": result.completion_reason.value}
""",
    "flat_parallel_with_nested_and_flat_maps_inside": """
@durable_execution
def handler(event, context: DurableContext):
    def square(c, x, i, xs):
        return c.step(lambda _: x * x, name="square")
    def squares(ctx):
        return ctx.map([2, 3], square, name="squares", config=MapConfig(nesting_type=FLAT)).get_results()
    def cubes(ctx):
        return ctx.map([2], lambda c, x, i, xs: c.step(lambda _: x**3, name="cube"), name="cubes").get_results()
    def child(ctx):
        return ctx.run_in_child_context(lambda c: c.step(lambda _: "deep", name="deep step"), name="deep")
    result = context.parallel([squares, cubes, child], name="mixed", config=ParallelConfig(nesting_type=FLAT))
    return {"summary": summary(result), "after": context.step(lambda _: "after", name="after")}
""",
}

# The callbacks each handler waits for, completed in this order (the reverse of their creation).
CALLBACKS = {
    "map_callbacks": ["approve c", "approve b", "approve a"],
    "flat_map_callbacks": ["approve c", "approve b", "approve a"],
    "flat_parallel_first_successful_with_callbacks": ["ask y"],
}


def compile_handler(source: str, sdk: str):
    module = types.ModuleType(f"port_batch_{sdk}")
    exec(textwrap.dedent(PRELUDE.format(sdk=sdk) + source), module.__dict__)
    return module.handler


def run_on(runner, name: str):
    arn = runner.run_async(input="{}", execution_timeout=3600)
    for callback in CALLBACKS.get(name, []):
        callback_id = runner.wait_for_callback(arn, name=f"{callback} create callback id", timeout=30)
        runner.send_callback_success(callback_id, callback.upper().encode())
    return runner.wait_for_result(arn, timeout=30), arn


def events_of(history) -> list[tuple]:
    """The history's operation and execution events: payloads, times, callback ids and stack
    traces aside (they differ by nature), errors by type and message."""
    raw = history["Events"] if isinstance(history, dict) else [e.to_dict() for e in history.events]
    found = []
    for event in raw:
        kind = event["EventType"]
        if kind == "InvocationCompleted":
            continue  # how many invocations differs: the official runner resumes waits in-process
        details = json.dumps(_normalized(event.get(f"{kind}Details") or {}), sort_keys=True)
        operation = None if kind.startswith("Execution") else (event.get("Id"), event.get("SubType"))
        found.append((kind, operation, event.get("Name") if operation else None, event.get("ParentId"), details))
    return sorted(found, key=repr)


def _normalized(details: dict) -> dict:
    out = {}
    for key, value in details.items():
        if key in ("Input", "Result"):
            out[key] = "payload"
        elif key == "Error":
            error = value.get("Payload") or {}
            error_type = error.get("ErrorType") or error.get("type") or ""
            out[key] = [error_type.rsplit(".", 1)[-1], error.get("ErrorMessage") or error.get("message")]
        elif key not in ("CallbackId", "ScheduledEndTimestamp"):
            out[key] = value
    if "CallbackId" in details:
        # A known difference of callbacks' events (not of batches): ours always record the
        # timeouts, 0 meaning none; the official records them only when a config gave them.
        out.setdefault("Timeout", 0)
        out.setdefault("HeartbeatTimeout", 0)
    return out


def test_every_handler_uses_map_or_parallel():
    assert len(HANDLERS) >= 14
    assert all("context.map" in source or "context.parallel" in source for source in HANDLERS.values())


@pytest.mark.parametrize("name", sorted(HANDLERS))
def test_map_and_parallel_behave_as_on_the_official_runner(name):
    compare_on_both_runners(HANDLERS[name], name)


# Virtual child contexts outside a batch: run_in_child_context with ChildConfig(is_virtual=True),
# the context a FLAT item runs in.
VIRTUAL_HANDLERS = {
    "virtual_child_context": """
@durable_execution
def handler(event, context: DurableContext):
    def inner(ctx):
        first = ctx.step(lambda _: 1, name="one")
        ctx.wait(Duration(1), name="pause")
        deeper = ctx.run_in_child_context(lambda c: c.step(lambda _: 2, name="two"), name="nested")
        return first + deeper
    value = context.run_in_child_context(inner, name="virtual", config=ChildConfig(is_virtual=True))
    return {"value": value, "after": context.step(lambda _: "after", name="after")}
""",
    "virtual_child_context_failing": """
@durable_execution
def handler(event, context: DurableContext):
    def inner(ctx):
        ctx.step(lambda _: 1, name="one")
        raise KeyError("missing")
    try:
        context.run_in_child_context(inner, name="virtual", config=ChildConfig(is_virtual=True))
    except ChildContextError as exc:
        return [type(exc).__name__, exc.error_type.rsplit(".", 1)[-1]]
""",
    "virtual_child_context_inside_a_child": """
@durable_execution
def handler(event, context: DurableContext):
    def outer(ctx):
        def inner(c):
            c.wait(Duration(1), name="pause")
            return c.step(lambda _: "inner", name="inner step")
        return ctx.run_in_child_context(inner, config=ChildConfig(is_virtual=True))
    return context.run_in_child_context(outer, name="outer")
""",
}


@pytest.mark.parametrize("name", sorted(VIRTUAL_HANDLERS))
def test_virtual_child_contexts_behave_as_on_the_official_runner(name):
    compare_on_both_runners(VIRTUAL_HANDLERS[name], name)


def compare_on_both_runners(source: str, name: str) -> None:
    official_handler = compile_handler(source, "aws_durable_execution_sdk_python")
    with DurableFunctionTestRunner(handler=official_handler, poll_interval=0.05) as runner:
        theirs, arn = run_on(runner, name)
        their_history = runner.get_execution_history(arn, include_execution_data=True)
    our_handler = compile_handler(source, "durable")
    with DurableTestRunner(our_handler) as runner:
        ours, execution_id = run_on(runner, name)
        our_history = runner.get_execution_history(execution_id, include_execution_data=True)
    assert ours.status == theirs.status.value, ours.error
    assert (json.loads(ours.result) if ours.result else None) == (json.loads(theirs.result) if theirs.result else None)
    if theirs.error is not None:
        assert ours.error["ErrorType"] == theirs.error.type.rsplit(".", 1)[-1]
        assert ours.error["ErrorMessage"] == theirs.error.message
    assert op_sequence(ours.operations) == op_sequence(theirs.operations)
    assert events_of(our_history) == events_of(their_history)


# A handler recorded with one nesting type and replayed with the other: the first invocation
# runs NESTED (or FLAT), every later one the other way. "mid" replays items that are still
# waiting; "ended" replays a map that completed before the wait after it. The items' results
# are large (over the official 256 KiB checkpoint limit together) so the official SDK stores
# the summary envelope and rebuilds the map from its items, as ours always does: with a small
# result it would return the stored result without looking at the items, mismatch or not.
NESTING_SWITCH = """
from {sdk}.config import Duration, MapConfig, NestingType
from {sdk}.context import DurableContext
from {sdk}.execution import durable_execution

invocations = []

@durable_execution
def handler(event, context: DurableContext):
    invocations.append(1)
    first, then = NestingType.{first}, NestingType.{then}
    config = MapConfig(nesting_type=first if len(invocations) == 1 else then)
    def item(ctx, x, index, items):
        if "{where}" == "mid":
            ctx.wait(Duration(2), name="pause")
        return ctx.step(lambda _: str(x) * 100_000, name="large")
    result = context.map([1, 2, 3], item, name="large ones", config=config)
    context.wait(Duration(1), name="later")
    return [len(text) for text in result.get_results()]
"""


@pytest.mark.parametrize("where", ["mid", "ended"])
@pytest.mark.parametrize(("first", "then"), [("NESTED", "FLAT"), ("FLAT", "NESTED"), ("FLAT", "FLAT")])
def test_a_journal_recorded_with_one_nesting_type_fails_replayed_with_the_other_on_both_runners(first, then, where):
    def compiled(sdk):
        source = NESTING_SWITCH.format(sdk=sdk, first=first, then=then, where=where)
        module = types.ModuleType(f"nesting_switch_{sdk}")
        exec(textwrap.dedent(source), module.__dict__)
        return module

    official = compiled("aws_durable_execution_sdk_python")
    with DurableFunctionTestRunner(handler=official.handler, poll_interval=0.05) as runner:
        theirs, _ = run_on(runner, "nesting switch")
    ours_module = compiled("durable")
    with DurableTestRunner(ours_module.handler) as runner:
        ours, _ = run_on(runner, "nesting switch")
    assert len(official.invocations) >= 2  # the switch happened
    assert len(ours_module.invocations) >= 2
    if first == then:  # the control: the same handler without a switch replays fine
        assert (theirs.status.value, json.loads(theirs.result)) == ("SUCCEEDED", [100_000] * 3)
        assert (ours.status, json.loads(ours.result)) == ("SUCCEEDED", [100_000] * 3)
        return
    assert theirs.status.value == "FAILED"
    assert theirs.error.type.rsplit(".", 1)[-1] == "NonDeterministicExecutionError"
    assert (ours.status, ours.error["ErrorType"]) == ("FAILED", "NonDeterministicExecutionError")
