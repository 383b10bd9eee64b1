import json

import pytest

from durable import DurableContext, durable_execution
from durable.config import ChildConfig, Duration
from durable.context import durable_with_child_context
from durable.identifier import operation_id
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

runs: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _reset():
    runs.clear()


def count(key: str) -> int:
    runs[key] = runs.get(key, 0) + 1
    return runs[key]


@durable_with_child_context
def level3(context: DurableContext, base: int) -> int:
    value = context.step(lambda _: count("deep step") and base * 10, name="deep step")
    context.wait(Duration(60), name="deep wait")
    return value + 1


def level2(context: DurableContext) -> int:
    return context.run_in_child_context(level3(4)) + context.step(lambda _: count("mid") and 100, name="mid")


def level1(context: DurableContext) -> dict:
    return {"sum": context.run_in_child_context(level2, name="level2")}


@durable_execution(name="tests.child.nested")
def nested(event: dict, context: DurableContext) -> dict:
    before = context.step(lambda _: count("top") and "top", name="top")
    inner = context.run_in_child_context(level1, name="level1", config=ChildConfig())
    return {"before": before, **inner}


def test_child_contexts_nested_three_deep_replay_and_derive_their_ids():
    with DurableTestRunner(nested) as runner:
        result = runner.run()
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == {"before": "top", "sum": 141}
    assert runs == {"top": 1, "deep step": 1, "mid": 1}  # the wait replayed everything once
    by_name = {op.name: op for op in result.operations}
    l1, l2, l3 = by_name["level1"], by_name["level2"], by_name["level3"]
    assert (l1.operation_type, l1.sub_type, l1.parent_id) == ("CONTEXT", "RunInChildContext", None)
    assert l1.operation_id == operation_id(None, 2)
    assert l2.parent_id == l1.operation_id
    assert l2.operation_id == operation_id(l1.operation_id, 1)
    assert l3.parent_id == l2.operation_id
    assert l3.operation_id == operation_id(l2.operation_id, 1)
    deep = by_name["deep step"]
    assert deep.parent_id == l3.operation_id
    assert deep.operation_id == operation_id(l3.operation_id, 1)
    assert by_name["deep wait"].operation_id == operation_id(l3.operation_id, 2)
    assert by_name["mid"].operation_id == operation_id(l2.operation_id, 2)
    assert [op.name for op in l3.child_operations] == ["deep step", "deep wait"]


@durable_execution(name="tests.child.failing")
def failing(event: dict, context: DurableContext) -> dict:
    def bad(child: DurableContext) -> None:
        child.step(lambda _: {}["missing"], name="lookup", config=None)

    try:
        context.run_in_child_context(bad, name="bad child")
    except Exception as exc:
        return {"type": type(exc).__name__, "inner": exc.error_type}
    return {}


def test_a_failing_child_raises_child_context_error_naming_the_inner_error():
    with DurableTestRunner(failing) as runner:
        result = runner.run()
    assert json.loads(result.result) == {"type": "ChildContextError", "inner": "StepError"}
    assert result.get_context("bad child").status == "FAILED"
    assert result.get_step("lookup").attempt == 6  # the default retry strategy ran its course
