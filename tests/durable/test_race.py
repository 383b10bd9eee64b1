"""context.race (ours): the first branch to settle wins; the losers are cancelled and recorded so."""

import json
from datetime import timedelta

import pytest

from durable import DurableContext, RaceResult, durable_execution
from durable import client as durable_client
from durable.config import Duration
from durable.exceptions import CallbackAlreadyCompletedError, ChildContextError
from durable.models import Execution, HistoryEvent, Operation
from durable.runtime import run_invocation
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

RAN: list[str] = []


def approval(context: DurableContext) -> str:
    return context.wait_for_callback(lambda callback_id, _: RAN.append("submitted"), name="approval")


def three_days(context: DurableContext) -> str:
    context.wait(Duration.from_days(3), name="deadline")
    return "timed out"


@durable_execution(name="tests.race.approval_or_timeout")
def approval_or_timeout(event: dict, context: DurableContext) -> dict:
    won: RaceResult[str] = context.race({"approval": approval, "timeout": three_days}, name="approval or timeout")
    after = context.step(lambda _: RAN.append("after") or "after", name="after")
    return {"index": won.index, "name": won.name, "value": won.value, "after": after}


def statuses(execution_id: str) -> dict[str, str]:
    return dict(Operation.objects.filter(execution_id=execution_id).values_list("name", "status"))


def test_the_callback_wins_when_it_comes_first_and_the_timer_is_cancelled():
    RAN.clear()
    with DurableTestRunner(approval_or_timeout) as runner:
        execution_id = runner.run_async()
        callback_id = runner.wait_for_callback(execution_id, name="approval")
        execution = Execution.objects.get(pk=execution_id)
        # Both branches wait: the execution is due at the timer, and the callback can wake it sooner.
        assert execution.wake_at == runner.clock.current + timedelta(days=3)
        runner.clock.advance_to(runner.clock.current + timedelta(days=1))
        runner.send_callback_success(callback_id, "approved")
        result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == {"index": 0, "name": "approval", "value": "approved", "after": "after"}
    ops = statuses(execution_id)
    assert ops["approval or timeout"] == "SUCCEEDED"
    assert (ops["approval"], ops["timeout"], ops["deadline"]) == ("SUCCEEDED", "CANCELLED", "CANCELLED")
    cancelled = dict(
        HistoryEvent.objects.filter(execution_id=execution_id, event_type__endswith="Cancelled").values_list(
            "name", "event_type"
        )
    )
    assert cancelled == {"timeout": "ContextCancelled", "deadline": "WaitCancelled"}
    reason = HistoryEvent.objects.get(execution_id=execution_id, event_type="WaitCancelled").details["Reason"]
    assert reason == "lost the race approval or timeout to branch approval"


@durable_execution(name="tests.race.then_callback")
def then_callback(event: dict, context: DurableContext) -> str:
    # The timer listed first: in the invocation the callback wins, the timer's branch suspends first.
    context.race({"timeout": three_days, "approval": approval}, name="first")
    return context.wait_for_callback(lambda callback_id, _: None, name="second")


def test_a_cancelled_timer_no_longer_keeps_the_execution_due():
    with DurableTestRunner(then_callback) as runner:
        execution_id = runner.run_async()
        runner.send_callback_success(runner.wait_for_callback(execution_id, name="approval"), "ok")
        runner.wait_for_callback(execution_id, name="second")
        execution = Execution.objects.get(pk=execution_id)
    # Waiting only for the second callback: due at the execution's timeout, not at the lost timer.
    assert execution.wake_at == execution.timeout_at
    assert statuses(execution_id)["deadline"] == "CANCELLED"


def test_the_timer_wins_when_no_callback_comes_and_the_callback_is_cancelled():
    with DurableTestRunner(approval_or_timeout) as runner:
        execution_id = runner.run_async()
        callback_id = runner.wait_for_callback(execution_id, name="approval")
        result = runner.wait_for_result(execution_id)
        assert json.loads(result.result)["name"] == "timeout"
        assert json.loads(result.result)["value"] == "timed out"
        # A late sender is told the truth: the callback is no longer awaited.
        with pytest.raises(CallbackAlreadyCompletedError, match="CANCELLED"):
            runner.send_callback_success(callback_id, "too late")
    ops = statuses(execution_id)
    assert (ops["approval"], ops["approval create callback id"], ops["deadline"]) == (
        "CANCELLED",
        "CANCELLED",
        "SUCCEEDED",
    )
    assert HistoryEvent.objects.filter(execution_id=execution_id, event_type="CallbackCancelled").count() == 1


def test_a_replay_keeps_the_recorded_winner_even_when_another_branch_could_now_finish():
    RAN.clear()
    with DurableTestRunner(approval_or_timeout) as runner:
        execution_id = runner.run_async()
        callback_id = runner.wait_for_callback(execution_id, name="approval")
        runner.send_callback_success(callback_id, "approved")
        first = runner.wait_for_result(execution_id)
        # Past the timer now; replay the finished execution's handler once more, by hand.
        runner.clock.advance_to(runner.clock.current + timedelta(days=4))
        Execution.objects.filter(pk=execution_id).update(status="RUNNING", wake_at=runner.clock.current)
        events_before = HistoryEvent.objects.filter(execution_id=execution_id).count()
        run_invocation(execution_id)
    again = Execution.objects.get(pk=execution_id)
    assert json.loads(again.result) == json.loads(first.result)
    assert json.loads(again.result)["name"] == "approval"
    assert RAN.count("after") == 1  # completed steps are not run again either
    # Nothing new but the invocation's own end.
    assert HistoryEvent.objects.filter(execution_id=execution_id).count() == events_before + 2


@durable_execution(name="tests.race.tie")
def tie(event: dict, context: DurableContext) -> str:
    def short(ctx: DurableContext) -> str:
        ctx.wait(Duration(5), name="short")
        return "short"

    def long(ctx: DurableContext) -> str:
        ctx.wait(Duration(6), name="long")
        return "long"

    return context.race([long, short], name="tie").value


def test_branches_that_can_all_finish_in_one_invocation_are_tried_in_order():
    with DurableTestRunner(tie) as runner:
        execution_id = runner.run_async()
        assert runner.step_once(execution_id)
        # No worker ran until both timers had passed: the first listed branch wins the tie.
        runner.clock.advance_to(runner.clock.current + timedelta(seconds=10))
        Execution.objects.filter(pk=execution_id).update(wake_at=runner.clock.current)
        result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == "long"
    assert statuses(execution_id)["short"] == "CANCELLED"


@durable_execution(name="tests.race.failing_branch")
def failing_branch(event: dict, context: DurableContext) -> dict:
    def breaks(ctx: DurableContext) -> None:
        ctx.wait(Duration(1), name="brief")
        raise KeyError("missing")

    try:
        context.race({"breaks": breaks, "slow": three_days}, name="r")
    except ChildContextError as exc:
        return {"error": type(exc).__name__, "error_type": exc.error_type}
    return {}


def test_a_branch_that_raises_first_fails_the_race_and_cancels_the_others():
    with DurableTestRunner(failing_branch) as runner:
        result = runner.run()
    assert json.loads(result.result) == {"error": "ChildContextError", "error_type": "KeyError"}
    ops = statuses(result.execution_id)
    assert (ops["r"], ops["breaks"], ops["slow"], ops["deadline"]) == ("FAILED", "FAILED", "CANCELLED", "CANCELLED")


@durable_execution(name="tests.race.immediate")
def immediate(event: dict, context: DurableContext) -> int:
    def now(ctx: DurableContext) -> int:
        return ctx.step(lambda _: 7, name="quick")

    def never(ctx: DurableContext) -> int:
        RAN.append("never")
        return 0

    return context.race([now, never]).value


def test_a_branch_that_settles_at_once_wins_without_running_the_rest():
    RAN.clear()
    with DurableTestRunner(immediate) as runner:
        result = runner.run()
        assert runner.invocations == 1
    assert json.loads(result.result) == 7
    assert "never" not in RAN
    assert Operation.objects.filter(execution_id=result.execution_id, sub_type="RaceBranch").count() == 1


@durable_execution(name="tests.race.child")
def slow_child(event: dict, context: DurableContext) -> str:
    context.wait(Duration.from_hours(1), name="child wait")
    return "child"


@durable_execution(name="tests.race.invoke_or_timer")
def invoke_or_timer(event: dict, context: DurableContext) -> str:
    return context.race(
        {
            "invoke": lambda ctx: ctx.invoke("tests.race.child", {}, name="call"),
            "timer": lambda ctx: ctx.wait(Duration(10), name="ten seconds") or "timer",
        }
    ).value


def test_a_losing_invoke_stops_its_child_execution():
    with DurableTestRunner(invoke_or_timer) as runner:
        result = runner.run()
    assert json.loads(result.result) == "timer"
    child = Execution.objects.get(parent_execution_id=result.execution_id)
    assert child.status == "STOPPED"
    assert child.error["ErrorMessage"] == "the race that invoked it was won by another branch"
    assert statuses(result.execution_id)["call"] == "CANCELLED"


def test_a_race_needs_a_branch():
    @durable_execution(name="tests.race.empty")
    def empty(event, context: DurableContext):
        context.race([])

    with DurableTestRunner(empty) as runner:
        result = runner.run()
    assert result.error["ErrorType"] == "ValidationError"
    assert durable_client.get_execution(result.execution_id).status == "FAILED"


@durable_execution(name="tests.race.timer_listed_first")
def timer_listed_first(event: dict, context: DurableContext) -> str:
    def timer(ctx: DurableContext) -> str:
        ctx.wait(Duration(5), name="five seconds")
        return "timer"

    return context.race([timer, approval], name="r").name or ""


def test_a_branch_recorded_as_settled_wins_even_if_the_race_end_was_not_recorded():
    with DurableTestRunner(timer_listed_first) as runner:
        execution_id = runner.run_async()
        runner.send_callback_success(runner.wait_for_callback(execution_id, name="approval"), "ok")
        assert json.loads(runner.wait_for_result(execution_id).result) == "approval"
        # As if the invocation died after the winning branch's end was written, before the race's:
        # the race and the timer are still open, and the timer could now finish too.
        journal = Operation.objects.filter(execution_id=execution_id)
        journal.filter(name="r").update(status="STARTED", result=None, ended_at=None)
        journal.filter(name__in=["timer", "five seconds"]).update(status="STARTED", ended_at=None)
        journal.filter(name="five seconds").update(wait_until=runner.clock.current + timedelta(seconds=5))
        runner.clock.advance_to(runner.clock.current + timedelta(seconds=10))
        Execution.objects.filter(pk=execution_id).update(status="RUNNING", result=None, wake_at=runner.clock.current)
        result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == "approval"
    assert statuses(execution_id)["five seconds"] == "CANCELLED"
