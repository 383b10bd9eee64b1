"""NestingType.FLAT on the time-skipping runner over the real engine: what is recorded (no row
per item, the items' operations under the batch), replay by re-running the items' bodies over
their checkpoints, one item suspended while the others end, the nesting type changed under a
running execution, and bad input. test_official_port_batch.py compares FLAT with the official
runner; these check what the comparison cannot see (how often bodies run, rows, writes)."""

import json
from collections import Counter

import pytest

from durable import (
    CompletionConfig,
    DurableContext,
    MapConfig,
    ParallelConfig,
    StepConfig,
    ValidationError,
    durable_execution,
)
from durable.config import ChildConfig, Duration, NestingType
from durable.exceptions import NonDeterministicExecutionError
from durable.identifier import operation_id
from durable.models import HistoryEvent, Operation
from durable.retries import RetryPresets
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

NO_RETRY = StepConfig(retry_strategy=RetryPresets.none())
FLAT = MapConfig(nesting_type=NestingType.FLAT)


def run(handler):
    with DurableTestRunner(handler) as runner:
        return runner.run(input="{}")


def rows(execution_id):
    return list(Operation.objects.filter(execution_id=execution_id).order_by("id"))


def test_flat_items_record_no_context_and_their_operations_sit_under_the_batch_with_ids_from_the_item():
    seen = {}

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            seen[index] = ctx.is_virtual
            return ctx.step(lambda _: x * 2, name="double")

        seen["top"] = context.is_virtual
        return context.map([5, 6, 7], item, name="doubles", config=FLAT).get_results()

    done = run(handler)
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == [10, 12, 14]
    assert seen == {"top": False, 0: True, 1: True, 2: True}
    map_id = operation_id(None, 1)
    found = {(o.operation_id, o.type, o.sub_type, o.name, o.parent_id) for o in rows(done.execution_id)}
    steps = {(operation_id(operation_id(map_id, i), 1), "STEP", "Step", "double", map_id) for i in range(3)}
    assert found == {(map_id, "CONTEXT", "Map", "doubles", None)} | steps
    kinds = Counter(HistoryEvent.objects.filter(execution_id=done.execution_id).values_list("event_type", flat=True))
    assert (kinds["ContextStarted"], kinds["ContextSucceeded"], kinds["StepSucceeded"]) == (1, 1, 3)


def test_flat_halves_the_rows_and_events_of_a_map_of_one_step_items():
    def handler_for(nesting):
        @durable_execution
        def handler(event, context: DurableContext):
            config = MapConfig(nesting_type=nesting, max_concurrency=4)
            return sum(
                context.map(list(range(20)), lambda c, x, i, xs: c.step(lambda _: x), config=config).get_results()
            )

        return handler

    counts = {}
    for nesting in NestingType:
        done = run(handler_for(nesting))
        assert json.loads(done.result) == sum(range(20))
        stored = HistoryEvent.objects.filter(execution_id=done.execution_id).exclude(operation_id=None)
        events = [e for row in stored.exclude(event_type__startswith="Execution") for e in row.events()]
        counts[nesting] = (len(rows(done.execution_id)), len(events))
    assert counts[NestingType.NESTED] == (1 + 20 + 20, 2 + 2 * 20 + 2 * 20)
    assert counts[NestingType.FLAT] == (1 + 20, 2 + 2 * 20)


def test_a_replay_rederives_ended_items_by_running_their_bodies_over_their_checkpoints():
    entered = Counter()
    step_runs = Counter()

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            entered[index] += 1
            if x == "boom":
                raise ValueError("no operation before this failure")

            def divide(_):
                step_runs[index] += 1
                return 10 // x

            return ctx.step(divide, name="divide", config=NO_RETRY)

        config = MapConfig(completion_config=CompletionConfig.all_completed(), nesting_type=NestingType.FLAT)
        result = context.map([5, 0, "boom", 2], item, name="divisions", config=config)
        first = context.step(lambda _: result.to_dict(), name="as first seen")
        context.wait(Duration(1), name="later")  # the next invocation replays the completed map
        return {"first": first, "replayed": result.to_dict()}

    done = run(handler)
    assert done.status == "SUCCEEDED", done.error
    value = json.loads(done.result)
    assert value["first"] == value["replayed"]
    assert [item["status"] for item in value["replayed"]["all"]] == ["SUCCEEDED", "FAILED", "FAILED", "SUCCEEDED"]
    errors = [item["error"] for item in value["replayed"]["all"] if item["error"]]
    assert [(e["ErrorType"], e["ErrorMessage"]) for e in errors] == [
        ("StepError", "integer division or modulo by zero"),
        ("ValueError", "no operation before this failure"),
    ]
    assert entered == {0: 2, 1: 2, 2: 2, 3: 2}  # every body ran again to re-derive its end...
    assert step_runs == {0: 1, 1: 1, 3: 1}  # ...while its steps returned what they recorded


def test_one_flat_item_waiting_on_a_callback_suspends_alone_and_the_ended_ones_do_no_work_twice():
    entered = Counter()
    step_runs = Counter()

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            entered[x] += 1
            approval = ctx.wait_for_callback(lambda cid, _: None, name="approve b") if x == "b" else "-"

            def record(_):
                step_runs[x] += 1
                return f"{x}{approval}"

            return ctx.step(record, name="record")

        return context.map(["a", "b", "c"], item, name="approvals", config=FLAT).get_results()

    with DurableTestRunner(handler) as runner:
        execution_id = runner.run_async(input="{}")
        runner.step_once(execution_id)
        assert step_runs == {"a": 1, "c": 1}
        callbacks = Operation.objects.filter(execution_id=execution_id, type="CALLBACK", status="STARTED")
        assert callbacks.count() == 1
        map_row = Operation.objects.get(execution_id=execution_id, sub_type="Map")
        assert map_row.status == "STARTED"
        runner.send_callback_success(callbacks.get().callback_id, "!")
        done = runner.wait_for_result(execution_id)
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == ["a-", "b!", "c-"]
    assert step_runs == {"a": 1, "b": 1, "c": 1}
    assert entered == {"a": 2, "b": 2, "c": 2}  # the second invocation re-derived a and c
    wait_for_callback = Operation.objects.get(execution_id=execution_id, sub_type="WaitForCallback")
    assert wait_for_callback.parent_id == map_row.operation_id


def test_a_flat_parallel_that_stops_early_reports_the_running_branch_started_and_records_nothing_more_of_it():
    @durable_execution
    def handler(event, context: DurableContext):
        def slow(ctx):
            ctx.wait_for_callback(lambda cid, _: None, name="never sent")
            return ctx.step(lambda _: "too late", name="after the callback")

        def fast(ctx):
            return ctx.step(lambda _: "fast", name="quick")

        config = ParallelConfig(completion_config=CompletionConfig.first_successful(), nesting_type=NestingType.FLAT)
        result = context.parallel([slow, fast], name="race", config=config)
        context.wait(Duration(1), name="later")  # the next invocation replays the parallel
        return {"statuses": [item.status.value for item in result.all], "results": result.get_results()}

    done = run(handler)
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == {"statuses": ["STARTED", "SUCCEEDED"], "results": ["fast"]}
    names = {o.name for o in rows(done.execution_id)}
    assert "quick" in names
    assert "after the callback" not in names


@pytest.mark.parametrize("where", ["items waiting", "map ended"])
@pytest.mark.parametrize(
    ("first", "then"), [(NestingType.NESTED, NestingType.FLAT), (NestingType.FLAT, NestingType.NESTED)]
)
def test_changing_the_nesting_type_under_a_running_execution_is_non_deterministic(first, then, where):
    nesting = {"now": first}

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            if where == "items waiting":
                ctx.wait(Duration(5), name="pause")
            return ctx.step(lambda _: x, name="keep")

        config = MapConfig(nesting_type=nesting["now"])
        result = context.map([1, 2], item, name="m", config=config)
        context.wait(Duration(5), name="later")
        return result.get_results()

    with DurableTestRunner(handler) as runner:
        execution_id = runner.run_async(input="{}")
        runner.step_once(execution_id)
        assert Operation.objects.filter(execution_id=execution_id, type="WAIT", status="STARTED").exists()
        nesting["now"] = then
        done = runner.wait_for_result(execution_id)
    assert done.status == "FAILED"
    assert done.error["ErrorType"] == NonDeterministicExecutionError.__name__
    if then is NestingType.FLAT:
        assert "NestingType.FLAT" in done.error["ErrorMessage"]


def test_a_nesting_type_that_is_not_one_is_refused_before_the_map_is_recorded():
    @durable_execution
    def handler(event, context: DurableContext):
        try:
            context.map([1], lambda ctx, x, i, items: x, config=MapConfig(nesting_type="FLAT"))
        except ValidationError as exc:
            return str(exc)

    done = run(handler)
    assert "nesting_type must be NestingType.NESTED or NestingType.FLAT" in json.loads(done.result)
    assert rows(done.execution_id) == []


@pytest.mark.parametrize("failure", ["a step", "the item's own code"])
def test_a_redrive_after_a_fix_reruns_the_failed_flat_item_only_and_completes_the_map(failure):
    from durable.client import redrive_execution
    from durable.execution import register

    fixed = {"value": False}
    runs = Counter()

    @durable_execution(name=f"tests.flat.redriven.{failure.replace(' ', '_')}")
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            def work(_):
                runs[x] += 1
                if x == "b" and failure == "a step" and not fixed["value"]:
                    raise LookupError("b is broken")
                return x.upper()

            value = ctx.step(work, name="work", config=NO_RETRY)
            if x == "b" and failure == "the item's own code" and not fixed["value"]:
                raise LookupError("b is broken")
            return value

        config = MapConfig(max_concurrency=1, nesting_type=NestingType.FLAT)
        result = context.map(["a", "b", "c"], item, name="letters", config=config)
        result.throw_if_error()
        return result.get_results()

    with DurableTestRunner(handler) as runner:
        failed = runner.run(input="{}")
        assert failed.status == "FAILED"
        assert failed.error["ErrorMessage"] == "b is broken"
        assert runs == {"a": 1, "b": 1}  # fail-fast: c never started
        fixed["value"] = True
        register(handler)
        redrive_execution(failed.execution_id)
        done = runner.wait_for_result(failed.execution_id)
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == ["A", "B", "C"]
    # a's step replayed; b's step ran again if it was what failed (else replayed); c ran at last.
    assert runs == {"a": 1, "b": 2 if failure == "a step" else 1, "c": 1}


def test_a_virtual_child_context_records_nothing_of_itself_and_runs_again_on_replay():
    entered = Counter()

    @durable_execution
    def handler(event, context: DurableContext):
        def inner(ctx):
            entered["inner"] += 1
            assert ctx.is_virtual
            value = ctx.step(lambda _: 20, name="twenty")
            ctx.wait(Duration(1), name="pause")  # the next invocation replays it
            return value + 1

        return context.run_in_child_context(inner, name="virtual", config=ChildConfig(is_virtual=True))

    done = run(handler)
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == 21
    virtual_id = operation_id(None, 1)
    found = {(o.name, o.operation_id, o.parent_id) for o in rows(done.execution_id)}
    assert found == {("twenty", operation_id(virtual_id, 1), None), ("pause", operation_id(virtual_id, 2), None)}
    assert entered["inner"] == 2


@pytest.mark.parametrize("first", [True, False])
def test_switching_is_virtual_under_a_running_execution_is_non_deterministic(first):
    virtual = {"now": first}

    @durable_execution
    def handler(event, context: DurableContext):
        def inner(ctx):
            ctx.wait(Duration(5), name="pause")
            return "done"

        return context.run_in_child_context(inner, name="c", config=ChildConfig(is_virtual=virtual["now"]))

    with DurableTestRunner(handler) as runner:
        execution_id = runner.run_async(input="{}")
        runner.step_once(execution_id)
        virtual["now"] = not first
        done = runner.wait_for_result(execution_id)
    assert (done.status, done.error["ErrorType"]) == ("FAILED", NonDeterministicExecutionError.__name__)


def test_a_redrive_after_a_fix_reruns_the_failed_step_of_a_virtual_child_context():
    from durable.client import redrive_execution
    from durable.execution import register

    fixed = {"value": False}
    runs = Counter()

    @durable_execution(name="tests.flat.virtual_redriven")
    def handler(event, context: DurableContext):
        def inner(ctx):
            ctx.step(lambda _: runs.update(["first"]), name="first")

            def second(_):
                runs["second"] += 1
                if not fixed["value"]:
                    raise LookupError("second is broken")
                return "fixed"

            return ctx.step(second, name="second", config=NO_RETRY)

        return context.run_in_child_context(inner, name="virtual", config=ChildConfig(is_virtual=True))

    with DurableTestRunner(handler) as runner:
        failed = runner.run(input="{}")
        assert (failed.status, failed.error["ErrorMessage"]) == ("FAILED", "second is broken")
        fixed["value"] = True
        register(handler)
        redrive_execution(failed.execution_id)
        done = runner.wait_for_result(failed.execution_id)
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == "fixed"
    assert runs == {"first": 1, "second": 2}
