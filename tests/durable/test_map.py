"""context.map on the time-skipping runner over the real engine: ids and shape, completion
policies, max_concurrency, suspension and resumption of items, replay, serdes, bad input."""

import json
import random
import threading
import time

import pytest

from durable import (
    BatchItemStatus,
    CompletionConfig,
    CompletionReason,
    DurableContext,
    MapConfig,
    StepConfig,
    ValidationError,
    durable_execution,
)
from durable.config import Duration, NestingType, WaitForCallbackConfig
from durable.exceptions import ChildContextError, NonDeterministicExecutionError
from durable.identifier import operation_id
from durable.models import Operation
from durable.retries import RetryPresets
from durable.serdes import JsonSerDes, SerDes
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

NO_RETRY = StepConfig(retry_strategy=RetryPresets.none())


def run(handler, event=None):
    with DurableTestRunner(handler) as runner:
        return runner.run(input=json.dumps(event or {}))


def ops(execution_id):
    return list(Operation.objects.filter(execution_id=execution_id).order_by("id"))


class Meter:
    """Counts the step bodies running at once, and the highest count seen."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.runs: dict[int, int] = {}

    def body(self, index, seconds=0.15):
        def run(_):
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
                self.runs[index] = self.runs.get(index, 0) + 1
            time.sleep(seconds)
            with self.lock:
                self.now -= 1
            return index * 10

        return run


def test_each_item_is_a_child_context_keyed_by_its_index_and_results_come_in_input_order():
    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            time.sleep(random.random() / 50)  # finish in any order
            return ctx.step(lambda _: x * 2, name="double")

        result = context.map([5, 6, 7, 8], item, name="doubles")
        return {"results": result.get_results(), "reason": result.completion_reason.value}

    done = run(handler)
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == {"results": [10, 12, 14, 16], "reason": "ALL_COMPLETED"}
    rows = ops(done.execution_id)
    batch = next(o for o in rows if o.sub_type == "Map")
    assert (batch.type, batch.name, batch.status, batch.parent_id) == ("CONTEXT", "doubles", "SUCCEEDED", None)
    assert batch.operation_id == operation_id(None, 1)
    items = sorted((o for o in rows if o.sub_type == "MapIteration"), key=lambda o: o.name)
    assert [o.name for o in items] == ["map-item-0", "map-item-1", "map-item-2", "map-item-3"]
    assert [o.operation_id for o in items] == [operation_id(batch.operation_id, i) for i in range(4)]
    assert {o.parent_id for o in items} == {batch.operation_id}
    assert [o.result for o in items] == ["10", "12", "14", "16"]
    # The batch stores the official summary envelope; each result lives once, in its item's row.
    assert json.loads(batch.result) == {
        "type": "MapResult",
        "totalCount": 4,
        "completionReason": "ALL_COMPLETED",
        "startedIndexes": [],
        "startedCount": 0,
        "successCount": 4,
        "failureCount": 0,
        "status": "SUCCEEDED",
    }


def test_an_empty_map_completes_at_once_with_an_empty_result():
    @durable_execution
    def handler(event, context: DurableContext):
        result = context.map([], lambda ctx, x, i, items: 1 / 0, name="nothing")
        return {"all": result.to_dict(), "status": result.status.value, "total": result.total_count}

    done = run(handler)
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == {
        "all": {"all": [], "completionReason": "ALL_COMPLETED"},
        "status": "SUCCEEDED",
        "total": 0,
    }
    [batch] = ops(done.execution_id)
    assert (batch.sub_type, batch.status) == ("Map", "SUCCEEDED")


def test_min_successful_reached_early_leaves_the_rest_unstarted():
    meter = Meter()

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            return ctx.step(meter.body(index, 0.01), name="work")

        config = MapConfig(max_concurrency=1, completion_config=CompletionConfig(min_successful=2))
        result = context.map(list(range(6)), item, name="two", config=config)
        return {"all": [i.status.value for i in result.all], "reason": result.completion_reason.value}

    done = run(handler)
    assert json.loads(done.result) == {"all": ["SUCCEEDED", "SUCCEEDED"], "reason": "MIN_SUCCESSFUL_REACHED"}
    assert meter.runs == {0: 1, 1: 1}  # items 2-5 never started
    assert sum(1 for o in ops(done.execution_id) if o.sub_type == "MapIteration") == 2


def test_first_successful_reports_items_still_running_as_started_and_records_nothing_more_of_them():
    finished = threading.Event()
    after = []

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            if index == 0:
                return ctx.step(lambda _: "fast", name="fast")
            ctx.step(lambda _: finished.wait(5) and "slow", name="slow")
            return ctx.step(lambda _: after.append(index), name="after")

        config = MapConfig(completion_config=CompletionConfig.first_successful())
        result = context.map([0, 1], item, name="race", config=config)
        return {"statuses": [i.status.value for i in result.all], "results": result.get_results()}

    with DurableTestRunner(handler) as runner:
        done = runner.run(input="{}")
        finished.set()  # the orphaned item's step now ends: its next checkpoint is refused
        time.sleep(0.3)
    assert json.loads(done.result) == {"statuses": ["SUCCEEDED", "STARTED"], "results": ["fast"]}
    assert after == []  # nothing of the orphan ran past its batch's completion
    rows = {o.name: o for o in ops(done.execution_id)}
    assert rows["slow"].status != "SUCCEEDED"
    assert "after" not in rows
    envelope = json.loads(rows["race"].result)
    assert (envelope["completionReason"], envelope["startedIndexes"], envelope["totalCount"]) == (
        "MIN_SUCCESSFUL_REACHED",
        [1],
        2,
    )


def test_tolerated_failures_exceeded_stops_the_map_and_throw_if_error_raises_the_first_failure():
    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            if x < 0:
                raise ValueError(f"negative {x}")
            return x

        config = MapConfig(max_concurrency=1, completion_config=CompletionConfig(tolerated_failure_count=1))
        result = context.map([1, -2, 3, -4, 5, 6], item, name="checked", config=config)
        try:
            result.throw_if_error()
        except ChildContextError as exc:
            raised = {"type": type(exc).__name__, "error_type": exc.error_type, "message": exc.message}
        return {
            "statuses": [i.status.value for i in result.all],
            "reason": result.completion_reason.value,
            "counts": [result.success_count, result.failure_count, result.started_count, result.total_count],
            "errors": [e.message for e in result.get_errors()],
            "raised": raised,
        }

    done = run(handler)
    assert json.loads(done.result) == {
        "statuses": ["SUCCEEDED", "FAILED", "SUCCEEDED", "FAILED"],
        "reason": "FAILURE_TOLERANCE_EXCEEDED",
        "counts": [2, 2, 0, 4],
        "errors": ["negative -2", "negative -4"],
        "raised": {"type": "ChildContextError", "error_type": "ValueError", "message": "negative -2"},
    }


def test_the_default_map_fails_fast_and_all_completed_runs_every_item():
    def item(ctx, x, index, items):
        if x == 1:
            raise KeyError("one")
        return x

    @durable_execution
    def handler(event, context: DurableContext):
        fast = context.map([0, 1, 2, 3], item, name="fast", config=MapConfig(max_concurrency=1))
        every = context.map(
            [0, 1, 2, 3], item, name="every", config=MapConfig(completion_config=CompletionConfig.all_completed())
        )
        return [
            [fast.completion_reason.value, fast.total_count, fast.status.value],
            [every.completion_reason.value, every.total_count, every.status.value, every.get_results()],
        ]

    done = run(handler)
    assert json.loads(done.result) == [
        ["FAILURE_TOLERANCE_EXCEEDED", 2, "FAILED"],
        ["ALL_COMPLETED", 4, "FAILED", [0, 2, 3]],
    ]


@pytest.mark.parametrize(("limit", "peak"), [(1, 1), (3, 3), (None, 8)])
def test_max_concurrency_bounds_the_items_running_at_once(limit, peak):
    meter = Meter()

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            return ctx.step(meter.body(index), name="work")

        result = context.map(list(range(8)), item, name="bounded", config=MapConfig(max_concurrency=limit))
        return result.get_results()

    done = run(handler)
    assert json.loads(done.result) == [i * 10 for i in range(8)]
    assert meter.peak == peak  # measured in the step bodies themselves


def test_items_waiting_on_callbacks_suspend_alone_and_resume_in_any_order_without_rerunning_finished_ones():
    runs: dict[int, int] = {}

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            value = ctx.wait_for_callback(lambda cid, _: None, name=f"approve {x}")
            return ctx.step(lambda _: runs.__setitem__(index, runs.get(index, 0) + 1) or f"{x}:{value}", name="after")

        result = context.map(["a", "b", "c", "d", "e"], item, name="approvals")
        return result.get_results()

    with DurableTestRunner(handler) as runner:
        execution_id = runner.run_async(input="{}")
        runner.step_once(execution_id)
        pending = dict(
            Operation.objects.filter(execution_id=execution_id, type="CALLBACK", status="STARTED").values_list(
                "name", "callback_id"
            )
        )
        assert len(pending) == 5  # every item suspended on its own callback
        order = ["c", "a", "e", "b", "d"]
        for count, letter in enumerate(order, 1):
            runner.send_callback_success(pending[f"approve {letter} create callback id"], letter.upper())
            runner.step_once(execution_id)
            assert len(runs) == count
            assert all(n == 1 for n in runs.values())
        done = runner.wait_for_result(execution_id)
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == ["a:A", "b:B", "c:C", "d:D", "e:E"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replay_rebuilds_the_same_result_whatever_order_the_items_finished_in(seed):
    rng = random.Random(seed)
    delays = [rng.random() / 20 for _ in range(6)]

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            time.sleep(delays[index])
            if x % 3 == 2:
                raise RuntimeError(f"item {x}")
            return ctx.step(lambda _: {"x": x}, name="value")

        config = MapConfig(completion_config=CompletionConfig(min_successful=3, tolerated_failure_count=3))
        result = context.map(list(range(6)), item, name="m", config=config)
        first = context.step(lambda _: result.to_dict(), name="as first seen")
        context.wait(Duration(1), name="later")  # the next invocation replays the map
        return {"first": first, "replayed": result.to_dict()}

    done = run(handler)
    assert done.status == "SUCCEEDED", done.error
    value = json.loads(done.result)
    assert value["first"] == value["replayed"]
    assert value["first"]["completionReason"] in ("MIN_SUCCESSFUL_REACHED", "ALL_COMPLETED")


def test_item_namer_item_serdes_and_batch_serdes():
    calls = []

    class Tagged(SerDes):
        def serialize(self, value, serdes_context):
            calls.append(type(value).__name__)
            return json.dumps({"tagged": value})

        def deserialize(self, data, serdes_context):
            return json.loads(data)["tagged"]

    class WholeBatch(SerDes):
        def serialize(self, value, serdes_context):
            calls.append(type(value).__name__)
            return json.dumps(value.to_dict())

        def deserialize(self, data, serdes_context):
            from durable import BatchResult

            return BatchResult.from_dict(json.loads(data))

    @durable_execution
    def handler(event, context: DurableContext):
        config = MapConfig(item_namer=lambda item, i: f"user {item}", item_serdes=Tagged(), serdes=WholeBatch())
        result = context.map(["ann", "bob"], lambda ctx, x, i, items: x.upper(), name="users", config=config)
        return result.get_results()

    done = run(handler)
    assert json.loads(done.result) == ["ANN", "BOB"]
    rows = {o.name: o for o in ops(done.execution_id)}
    assert json.loads(rows["user ann"].result) == {"tagged": "ANN"}  # the item serdes stored it
    assert sorted(calls) == ["BatchResult", "str", "str"]


def test_a_map_inside_a_map_item_and_a_map_after_a_map():
    @durable_execution
    def handler(event, context: DurableContext):
        def outer(ctx, row, i, rows):
            inner = ctx.map(row, lambda c, x, j, xs: c.step(lambda _: x * x, name="square"), name="row")
            return sum(inner.get_results())

        sums = context.map([[1, 2], [3, 4], [5]], outer, name="rows", config=MapConfig(max_concurrency=2))
        again = context.map(sums.get_results(), lambda c, x, i, xs: x + 1, name="plus one")
        return again.get_results()

    done = run(handler)
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == [6, 26, 26]


def test_a_transactional_step_in_an_item_commits_its_writes_with_its_checkpoint():
    from django.contrib.auth.models import Group

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, name, i, names):
            config = StepConfig(transactional=True)
            return ctx.step(lambda _: Group.objects.create(name=f"map-{name}").pk, name="persist", config=config)

        return context.map(["x", "y", "z"], item, name="persist all").get_results()

    done = run(handler)
    assert done.status == "SUCCEEDED", done.error
    assert sorted(Group.objects.filter(name__startswith="map-").values_list("pk", flat=True)) == sorted(
        json.loads(done.result)
    )


def test_changing_the_map_under_a_running_execution_is_non_deterministic():
    version = {"name": "first"}

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, i, items):
            ctx.wait(Duration(5), name="pause")
            return x

        return context.map([1, 2], item, name=version["name"]).get_results()

    with DurableTestRunner(handler) as runner:
        execution_id = runner.run_async(input="{}")
        runner.step_once(execution_id)
        version["name"] = "renamed"
        done = runner.wait_for_result(execution_id)
    assert done.status == "FAILED"
    assert done.error["ErrorType"] == NonDeterministicExecutionError.__name__


@pytest.mark.parametrize(
    ("inputs", "config", "message"),
    [
        ([1, 2], MapConfig(completion_config=CompletionConfig(min_successful=3)), "min_successful"),
        ((x for x in [1]), None, "sequence"),
        ([1], MapConfig(nesting_type=NestingType.FLAT), "FLAT"),
    ],
)
def test_a_map_that_cannot_run_is_refused_before_it_is_recorded(inputs, config, message):
    @durable_execution
    def handler(event, context: DurableContext):
        try:
            context.map(inputs, lambda ctx, x, i, items: x, config=config)
        except ValidationError as exc:
            return str(exc)

    done = run(handler)
    assert message in json.loads(done.result)
    assert ops(done.execution_id) == []


def test_config_values_out_of_range_are_refused():
    with pytest.raises(ValidationError, match="max_concurrency"):
        MapConfig(max_concurrency=0)
    with pytest.raises(ValidationError, match="tolerated_failure_percentage"):
        CompletionConfig(tolerated_failure_percentage=101)
    with pytest.raises(ValidationError, match="should_complete"):
        CompletionConfig(min_successful=1, should_complete=lambda status: None)


def test_a_failing_item_namer_fails_the_map_operation_as_the_official_sdk_does():
    @durable_execution
    def handler(event, context: DurableContext):
        try:
            context.map([1], lambda ctx, x, i, items: x, name="named", config=MapConfig(item_namer=lambda x, i: 1 / 0))
        except ChildContextError as exc:
            return exc.error_type

    done = run(handler)
    assert json.loads(done.result) == "ZeroDivisionError"
    [batch] = ops(done.execution_id)
    assert (batch.sub_type, batch.status) == ("Map", "FAILED")


def test_batch_result_helpers():
    from durable import BatchItem, BatchResult
    from durable.errors import ErrorObject

    result = BatchResult(
        [
            BatchItem(0, BatchItemStatus.SUCCEEDED, "a"),
            BatchItem(1, BatchItemStatus.FAILED, error=ErrorObject("StepError", "boom")),
            BatchItem(2, BatchItemStatus.STARTED),
        ],
        CompletionReason.FAILURE_TOLERANCE_EXCEEDED,
    )
    again = BatchResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert (again.succeeded()[0].index, again.failed()[0].index, again.started()[0].index) == (0, 1, 2)
    assert again.has_failure
    assert again.status is BatchItemStatus.FAILED
    with pytest.raises(ChildContextError) as raised:
        again.throw_if_error()
    assert (raised.value.error_type, raised.value.message) == ("StepError", "boom")


def test_a_step_that_fails_in_an_item_is_retried_by_its_strategy_while_the_others_wait():
    attempts = []

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, i, items):
            def flaky(step):
                attempts.append((x, step.attempt))
                if x == "b" and step.attempt < 3:
                    raise ConnectionError("later")
                return x

            return ctx.step(flaky, name="flaky")

        return context.map(["a", "b"], item, name="retrying").get_results()

    done = run(handler)
    assert json.loads(done.result) == ["a", "b"]
    assert sorted(attempts) == [("a", 1), ("b", 1), ("b", 2), ("b", 3)]


def test_a_callback_timeout_inside_an_item_fails_only_that_item():
    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, i, items):
            if x == "slow":
                return ctx.wait_for_callback(
                    lambda cid, _: None, name="never", config=WaitForCallbackConfig(timeout=Duration(30))
                )
            return x

        config = MapConfig(completion_config=CompletionConfig.all_completed())
        result = context.map(["fast", "slow"], item, name="m", config=config)
        return [[i.status.value, i.error.type if i.error else None] for i in result.all]

    done = run(handler)
    assert json.loads(done.result) == [["SUCCEEDED", None], ["FAILED", "CallbackTimeoutError"]]


def test_json_serdes_for_items_round_trips_on_the_first_run():
    @durable_execution
    def handler(event, context: DurableContext):
        config = MapConfig(item_serdes=JsonSerDes())
        result = context.map([1, 2], lambda ctx, x, i, items: (x, x), name="pairs", config=config)
        return [isinstance(r, list) for r in result.get_results()]

    assert json.loads(run(handler).result) == [True, True]  # tuples come back as lists, as on replay
