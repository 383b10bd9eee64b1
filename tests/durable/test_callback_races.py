"""Whoever commits first wins: a sender told "accepted" is never overruled by a time-out.

The deterministic tests put the sender's commit in the gap between the invocation reading a
callback and deciding it timed out, a millisecond either side of the deadline, on one clock.
The race tests (`test_callback_races_property.py`) run the same parties at many interleavings.
"""

import json
from datetime import timedelta

import pytest
from django.db import connection

from durable import DurableContext, durable_execution
from durable.client import send_callback_heartbeat, send_callback_success
from durable.config import CallbackConfig, Duration
from durable.exceptions import CallbackExpiredError, CallbackTimeoutError
from durable.models import Execution, Operation
from durable.runtime import run_invocation
from durable.store.base import SqlJournalStore
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

MS = timedelta(milliseconds=1)


@durable_execution(name="tests.races.awaits")
def awaits(event: dict, context: DurableContext) -> dict:
    config = CallbackConfig(
        timeout=Duration(event.get("timeout", 0)), heartbeat_timeout=Duration(event.get("heartbeat", 0))
    )
    callback = context.create_callback(name="decision", config=config)
    if event.get("wait_first"):
        context.wait(Duration(event["wait_first"]), name="first")
    try:
        return {"value": callback.result()}
    except CallbackTimeoutError as exc:
        return {"timed_out": str(exc)}


def _start(runner: DurableTestRunner, event: dict) -> tuple[str, Operation]:
    execution_id = runner.run_async(json.dumps(event))
    assert runner.step_once(execution_id)
    return execution_id, Operation.objects.get(execution_id=execution_id, type="CALLBACK")


def _sender_commits_during(monkeypatch, target: str, send) -> list[str]:
    """Run `send` right after the invocation's next call of the journal store's `<target>` returned
    (so the invocation holds what it read before the send), then move the clock on 2 ms."""
    real = getattr(SqlJournalStore, target)
    told: list[str] = []

    def read_then_send(*args, **kwargs):
        value = real(*args, **kwargs)
        if not told:
            try:
                send()
                told.append("accepted")
            except CallbackExpiredError:
                told.append("expired")
        return value

    monkeypatch.setattr(SqlJournalStore, target, read_then_send)
    return told


def _journal_with_lease() -> bool:
    return connection.vendor == "postgresql"


def test_a_completion_accepted_a_millisecond_before_the_deadline_is_never_overruled(monkeypatch):
    with DurableTestRunner(awaits) as runner:
        execution_id, callback = _start(runner, {"timeout": 60})
        runner.clock.current = callback.callback_deadline - MS

        def send():
            send_callback_success(callback.callback_id, "approved")
            runner.clock.current += 2 * MS  # the invocation decides after the deadline

        told = _sender_commits_during(monkeypatch, "load_operation", send)
        run_invocation(execution_id)
        result = runner.wait_for_result(execution_id)
    assert told == ["accepted"]
    assert json.loads(result.result) == {"value": "approved"}
    assert Operation.objects.get(pk=callback.pk).status == "SUCCEEDED"


def test_a_completion_accepted_while_the_journal_was_being_replayed_is_never_overruled(monkeypatch):
    # The invocation loaded the journal before the completion and reaches the callback after
    # its deadline: what it loaded is stale, the database decides.
    with DurableTestRunner(awaits) as runner:
        execution_id, callback = _start(runner, {"timeout": 60, "wait_first": 30})
        runner.clock.current = callback.callback_deadline - MS

        def send():
            send_callback_success(callback.callback_id, "approved")
            runner.clock.current += 2 * MS

        # Where the invocation reads its journal: with the lease on PostgreSQL, after it elsewhere.
        told = _sender_commits_during(monkeypatch, "acquire_lease" if _journal_with_lease() else "load_journal", send)
        run_invocation(execution_id)
        result = runner.wait_for_result(execution_id)
    assert told == ["accepted"]
    assert json.loads(result.result) == {"value": "approved"}


def test_a_heartbeat_accepted_a_millisecond_before_its_deadline_keeps_the_callback_alive(monkeypatch):
    with DurableTestRunner(awaits) as runner:
        execution_id, callback = _start(runner, {"heartbeat": 60})
        runner.clock.current = callback.heartbeat_deadline - MS

        def send():
            send_callback_heartbeat(callback.callback_id)
            runner.clock.current += 2 * MS

        told = _sender_commits_during(monkeypatch, "load_operation", send)
        run_invocation(execution_id)
        monkeypatch.undo()
        assert told == ["accepted"]
        op = Operation.objects.get(pk=callback.pk)
        assert op.status == "STARTED"
        assert op.heartbeat_deadline == callback.heartbeat_deadline - MS + timedelta(seconds=60)
        # The execution waits for the new deadline, not the old one.
        assert Execution.objects.get(pk=execution_id).wake_at == op.heartbeat_deadline
        runner.clock.current += timedelta(seconds=30)
        send_callback_success(callback.callback_id, "done in time")
        result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == {"value": "done in time"}


def test_a_sender_that_loses_the_race_is_told_the_callback_expired():
    with DurableTestRunner(awaits) as runner:
        execution_id, callback = _start(runner, {"timeout": 60})
        runner.clock.current = callback.callback_deadline + MS
        result = runner.wait_for_result(execution_id)
        assert "timed_out" in json.loads(result.result)
        # The time-out committed first: a sender arriving now was too late, whatever it thinks.
        with pytest.raises(CallbackExpiredError):
            send_callback_success(callback.callback_id, "late")
        with pytest.raises(CallbackExpiredError):
            send_callback_heartbeat(callback.callback_id)
    assert Operation.objects.get(pk=callback.pk).status == "TIMED_OUT"
