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
from durable.config import Duration, WaitForCallbackConfig
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
    """Counts the step bodies running at once, and the highest count seen. The first bodies
    wait (3 s at most) until `target` of them run at once, so reaching it does not depend on
    timing; once it was reached, none waits. More than `target` at once shows in `peak`."""

    def __init__(self, target=1):
        self.ready = threading.Condition()
        self.target = target
        self.now = 0
        self.peak = 0
        self.runs: dict[int, int] = {}

    def body(self, index):
        def run(_):
            with self.ready:
                self.now += 1
                self.peak = max(self.peak, self.now)
                self.runs[index] = self.runs.get(index, 0) + 1
                self.ready.notify_all()
                self.ready.wait_for(lambda: self.peak >= self.target, timeout=3)
            time.sleep(0.01)  # a little overlap for any item the engine would wrongly let in
            with self.ready:
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
            return ctx.step(meter.body(index), name="work")

        config = MapConfig(max_concurrency=1, completion_config=CompletionConfig(min_successful=2))
        result = context.map(list(range(6)), item, name="two", config=config)
        return {"all": [i.status.value for i in result.all], "reason": result.completion_reason.value}

    done = run(handler)
    assert json.loads(done.result) == {"all": ["SUCCEEDED", "SUCCEEDED"], "reason": "MIN_SUCCESSFUL_REACHED"}
    assert meter.runs == {0: 1, 1: 1}  # items 2-5 never started
    assert sum(1 for o in ops(done.execution_id) if o.sub_type == "MapIteration") == 2


def test_first_successful_reports_items_still_running_as_started_and_records_nothing_more_of_them():
    finished = threading.Event()
    slow_started = threading.Event()
    after = []

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            if index == 0:
                # Not before the slow step has begun: else the batch may complete before it is
                # even recorded (the orphan's thread had not reached it yet).
                return ctx.step(lambda _: slow_started.wait(5) and "fast", name="fast")
            ctx.step(lambda _: slow_started.set() or (finished.wait(5) and "slow"), name="slow")
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
    meter = Meter(target=peak)

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
        ([1], MapConfig(nesting_type="NESTED"), "nesting_type"),
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


def test_a_custom_decision_can_fail_a_batch_whose_items_all_succeeded():
    from durable import BatchCompletionError, CompletionOutcome, complete_batch, continue_batch

    def quorum(status):
        if status.items and status.items[0].status is BatchItemStatus.SUCCEEDED and status.success_count == 1:
            return complete_batch(CompletionOutcome.FAILED)
        return continue_batch()

    @durable_execution
    def handler(event, context: DurableContext):
        config = MapConfig(max_concurrency=1, completion_config=CompletionConfig(should_complete=quorum))
        result = context.map([1, 2, 3], lambda ctx, x, i, items: x, name="quorum", config=config)
        try:
            result.throw_if_error()
        except BatchCompletionError as exc:
            return [result.completion_reason.value, result.status.value, result.total_count, str(exc)]

    reason, status, total, message = json.loads(run(handler).result)
    assert (reason, status, total) == ("CUSTOM_COMPLETION_FAILED", "FAILED", 1)
    assert "should_complete" in message


@pytest.mark.django_db(transaction=True)
def test_a_map_whose_lease_is_lost_writes_nothing_more_from_any_item():
    from datetime import timedelta

    from durable import clock as engine_clock
    from durable.client import start_execution
    from durable.models import Execution
    from durable.runtime import run_invocation
    from durable.store import journal_store

    thief = {}

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            def work(_):
                if index == 0:  # another worker takes the execution over, as after an expired lease
                    later = engine_clock.now() + timedelta(days=1)
                    thief["lease"] = journal_store().acquire_lease(event["id"], "thief", later, 60)
                else:
                    time.sleep(0.3)
                return index

            return ctx.step(work, name="work")

        return context.map(list(range(6)), item, name="stolen").get_results()

    with DurableTestRunner(handler):
        execution = start_execution(handler, {})
        Execution.objects.filter(pk=execution.pk).update(input=json.dumps({"id": str(execution.pk)}))
        outcome = run_invocation(str(execution.pk))
    assert outcome.ran
    assert outcome.status is None  # it lost the lease: it recorded no end
    kept = Execution.objects.get(pk=execution.pk)
    assert (kept.status, kept.lease_token) == ("RUNNING", thief["lease"].token)
    rows = ops(execution.pk)
    assert not [o for o in rows if o.status == "SUCCEEDED"]  # every write after the theft was fenced off


def test_an_item_whose_timer_passes_while_others_run_goes_on_in_the_same_invocation():
    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            if index == 0:
                ctx.wait(Duration(1), name="short wait")
                return ctx.step(lambda _: "waited", name="after wait")
            return ctx.step(lambda _: time.sleep(2.5) or "slow", name="slow step")

        return context.map([0, 1], item, name="mixed").get_results()

    with DurableTestRunner(handler, skip_time=False) as runner:  # the real clock: timers pass in-process
        done = runner.run(input="{}")
        assert runner.invocations == 1
    assert json.loads(done.result) == ["waited", "slow"]
    wait = Operation.objects.get(execution_id=done.execution_id, name="short wait")
    assert wait.status == "SUCCEEDED"


def test_journal_work_of_an_item_whose_thread_has_its_own_connection_runs_on_the_invocations():
    from django.contrib.auth.models import Group

    @durable_execution
    def handler(event, context: DurableContext):
        def item(ctx, name, i, names):
            # A plain step on the item's thread: Django opens that thread a connection of its own.
            ctx.step(lambda _: Group.objects.filter(name="nobody").count(), name="read")
            config = StepConfig(transactional=True)
            return ctx.step(lambda _: Group.objects.create(name=f"own-{name}").name, name="persist", config=config)

        return context.map(["p", "q"], item, name="own connections").get_results()

    done = run(handler)  # in the test's transaction: only the invocation's connection sees its rows
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == ["own-p", "own-q"]
    assert Group.objects.filter(name__startswith="own-").count() == 2


def test_a_redrive_after_a_fix_reruns_the_failed_item_only_and_completes_the_map():
    from durable.client import redrive_execution
    from durable.execution import register

    fixed = {"value": False}
    runs = {}

    @durable_execution(name="tests.map.redriven")
    def handler(event, context: DurableContext):
        def item(ctx, x, index, items):
            def work(_):
                runs[x] = runs.get(x, 0) + 1
                if x == "b" and not fixed["value"]:
                    raise LookupError("b is broken")
                return x.upper()

            return ctx.step(work, name="work", config=NO_RETRY)

        result = context.map(["a", "b", "c"], item, name="letters", config=MapConfig(max_concurrency=1))
        result.throw_if_error()
        return result.get_results()

    with DurableTestRunner(handler) as runner:
        failed = runner.run(input="{}")
        assert failed.status == "FAILED"
        assert (failed.error["ErrorType"], failed.error["ErrorMessage"]) == ("ChildContextError", "b is broken")
        assert runs == {"a": 1, "b": 1}  # fail-fast: c never started
        fixed["value"] = True
        register(handler)
        redrive_execution(failed.execution_id)
        done = runner.wait_for_result(failed.execution_id)
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result) == ["A", "B", "C"]
    assert runs == {"a": 1, "b": 2, "c": 1}  # a replayed from its row, b run again, c run at last


@pytest.mark.django_db(transaction=True)
def test_connections_an_items_own_code_opens_are_closed_when_the_item_ends():
    # A step body in an item that queries the database does so on its thread's own connection
    # (the journal never does); the item's end closes it, so a map leaks no connections.
    from django.db import connections

    opened = []

    def body(step):
        from durable.models import Execution

        Execution.objects.count()  # the item thread's own connection opens here
        opened.append(connections["default"])  # this thread's wrapper
        return threading.get_ident()

    @durable_execution(name="tests.map.connections")
    def handler(event, context):
        batch = context.map([1, 2, 3], lambda ctx, item, i, items: ctx.step(body, name=f"query {i}"))
        return len(batch.get_results())

    result = run(handler)
    assert result.status == "SUCCEEDED", result.error
    assert len(opened) == 3
    assert all(wrapper is not connections["default"] for wrapper in opened)  # other threads' connections
    assert all(wrapper.connection is None for wrapper in opened)  # closed
