"""The drawn timeline's data: bars in journal order under their contexts, a step's attempts and
the waits between them, waits and callbacks as gaps of their length, an axis with round ticks,
and a cap on the rows drawn for large journals."""

import itertools
import json
import re
from datetime import timedelta

import pytest
from django.test import Client

from durable import DurableContext, Duration, RetryDecision, StepConfig, durable_execution
from durable.models import Execution
from durable.testing import DurableTestRunner
from durable.timeline import TIMELINE_ROWS, build_timeline
from tests.durable.test_admin import OPERATOR_PERMISSIONS, user_with

pytestmark = pytest.mark.django_db
LONG_NAME = "transform the incoming purchase order into the canonical ledger format " * 3
failures = {"left": 0}


def _retry_in_5s(error: Exception, attempts: int) -> RetryDecision:
    return RetryDecision.retry(Duration(5)) if attempts < 5 else RetryDecision.no_retry()


def _flaky(_) -> str:
    if failures["left"]:
        failures["left"] -= 1
        raise RuntimeError("flaky upstream")
    return "ok"


@durable_execution(name="tests.timeline.shapes")
def shapes(event: dict, context: DurableContext) -> str:
    context.run_in_child_context(lambda child: child.step(lambda _: "inside", name="inner step"), name="child")
    context.step(_flaky, name=LONG_NAME, config=StepConfig(retry_strategy=_retry_in_5s))
    context.wait(Duration(30), name="pause")
    return context.create_callback(name="approval").result()


@durable_execution(name="tests.timeline.many")
def many(event: dict, context: DurableContext) -> int:
    for i in range(event["n"]):
        context.step(lambda _, i=i: i, name=f"step {i}")
    return event["n"]


@pytest.fixture
def finished():
    failures["left"] = 2
    with DurableTestRunner(shapes) as runner:
        execution_id = runner.run_async()
        callback_id = runner.wait_for_callback(execution_id, name="approval")
        runner.clock.advance_to(runner.clock() + timedelta(seconds=20))
        runner.send_callback_success(callback_id, json.dumps("approved"))
        assert runner.wait_for_result(execution_id).status == "SUCCEEDED"
    return Execution.objects.get(pk=execution_id)


def test_bars_nest_under_their_context_in_journal_order(finished):
    timeline = build_timeline(finished)
    assert [(bar.label, bar.depth) for bar in timeline.bars] == [
        ("child", 0),
        ("inner step", 1),
        (LONG_NAME, 0),
        ("pause", 0),
        ("approval", 0),
    ]
    assert timeline.hidden == 0
    child = timeline.bars[0]
    assert [s.kind for s in child.segments] == ["context"]


def test_a_retried_step_is_drawn_as_its_attempts_with_the_waits_between(finished):
    flaky = build_timeline(finished).bars[2]
    assert [s.kind for s in flaky.segments] == ["failed", "retry", "failed", "retry", "run"]
    assert flaky.attempts == 3
    retries = [s for s in flaky.segments if s.kind == "retry"]
    assert [round((s.end - s.start).total_seconds()) for s in retries] == [5, 5]
    assert [s.text for s in retries] == ["retry wait 5 s", "retry wait 5 s"]
    # Each failed attempt says why (from its StepFailed event); the last says how it ended.
    texts = [s.text for s in flaky.segments if s.kind in ("failed", "run")]
    assert texts == [
        "attempt 1 failed after 0 ms: RuntimeError: flaky upstream",
        "attempt 2 failed after 0 ms: RuntimeError: flaky upstream",
        "attempt 3 succeeded after 0 ms",
    ]
    assert [s.attempt for s in flaky.segments] == [1, 2, 2, 3, 3]
    # Segments follow each other along the track.
    lefts = [s.left for s in flaky.segments]
    assert lefts == sorted(lefts)


def test_waits_and_callbacks_are_gaps_of_their_length(finished):
    timeline = build_timeline(finished)
    pause, approval = timeline.bars[3], timeline.bars[4]
    assert [(s.kind, s.text) for s in pause.segments] == [("wait", "wait 30 s")]
    assert [(s.kind, s.text) for s in approval.segments] == [("wait", "callback 20 s")]
    total = timeline.span.total_seconds()
    assert total == pytest.approx(10 + 30 + 20, abs=1)
    assert pause.segments[0].width == pytest.approx(30 / total * 100, abs=0.1)
    assert approval.segments[0].left == pytest.approx(40 / total * 100, abs=0.1)


def test_the_axis_has_round_ticks_from_the_start(finished):
    ticks = build_timeline(finished).ticks
    assert [t.text for t in ticks] == ["+0 ms", "+10 s", "+20 s", "+30 s", "+40 s", "+50 s", "+1 min"]
    assert ticks[0].left == 0
    assert all(a.left < b.left <= 100 for a, b in itertools.pairwise(ticks))


def test_a_large_journal_draws_a_capped_number_of_rows_with_a_way_to_all():
    client = Client()
    client.force_login(user_with("operator", *OPERATOR_PERMISSIONS))
    n = TIMELINE_ROWS + 50
    with DurableTestRunner(many) as runner:
        execution_id = runner.run(json.dumps({"n": n})).execution_id
    execution = Execution.objects.get(pk=execution_id)
    capped = build_timeline(execution)
    assert (len(capped.bars), capped.total, capped.hidden) == (TIMELINE_ROWS, n, 50)
    page = client.get(f"/admin/durable/execution/{execution_id}/change/").content.decode()
    assert page.count('class="tl-row timeline-row"') == TIMELINE_ROWS
    assert re.search(r'id="timeline-more">50 more operations not drawn\. <a href="\?timeline=all#timeline">', page)
    everything = client.get(f"/admin/durable/execution/{execution_id}/change/", {"timeline": "all"}).content.decode()
    assert everything.count('class="tl-row timeline-row"') == n
    assert 'id="timeline-more"' not in everything
    # Its history (a StepStarted and a StepSucceeded per step...) is cut at 500 events too.
    assert page.count('class="history-row"') == 500
    assert 'id="history-more"' in page
    all_history = client.get(f"/admin/durable/execution/{execution_id}/change/", {"history": "all"}).content.decode()
    events = sum(len(row.events()) for row in execution.history.all())
    assert all_history.count('class="history-row"') == events > 500
    assert 'id="history-more"' not in all_history
