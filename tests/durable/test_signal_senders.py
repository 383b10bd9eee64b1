"""`execution_status_changed` is sent by the durable function whose execution changed: a
receiver connected with `sender=<function>` hears that function's executions only, and a
function nobody listens to (no receiver for it, no other sink) makes no event at all, not even
its RUNNING one. A receiver connected without a sender hears every function's."""

import json
import uuid

import pytest

from durable import sinks
from durable.execution import DurableFunction, register
from durable.models import EventDelivery, OutboxEvent
from durable.signals import execution_status_changed
from durable.testing import DurableTestRunner
from tests.durable import event_workflows

pytestmark = pytest.mark.django_db(transaction=True)

FOLLOWED = event_workflows.outcome
OTHER = DurableFunction(name="tests.signal_senders.other", func=event_workflows.outcome.func)


@pytest.fixture
def only_receivers():
    """No receiver but the ones a test connects (the suite's own listen to every function)."""
    kept = execution_status_changed.receivers[:]
    execution_status_changed.receivers.clear()
    execution_status_changed.sender_receivers_cache.clear()
    yield
    execution_status_changed.receivers[:] = kept
    execution_status_changed.sender_receivers_cache.clear()


@pytest.fixture
def heard(only_receivers):
    """What a receiver connected with sender=FOLLOWED hears: (sender, function name, status)."""
    seen: list[tuple[object, str, str]] = []

    def receiver(sender, **kwargs):
        seen.append((sender, kwargs["function_name"], kwargs["status"]))

    execution_status_changed.connect(receiver, sender=FOLLOWED)
    yield seen
    execution_status_changed.disconnect(receiver, sender=FOLLOWED)


def run(function: DurableFunction) -> str:
    register(function)
    with DurableTestRunner(function) as runner:
        result = runner.run(json.dumps({}))
    assert result.status == "SUCCEEDED"
    return result.execution_id


def test_a_receiver_for_one_function_hears_its_executions_and_no_other(heard):
    followed = run(FOLLOWED)
    other = run(OTHER)
    assert heard == [(FOLLOWED, FOLLOWED.name, "RUNNING"), (FOLLOWED, FOLLOWED.name, "SUCCEEDED")]
    # The other function's executions made no event at all: nobody listens to them.
    assert sorted(OutboxEvent.objects.values_list("execution_id", "status")) == sorted(
        [(uuid.UUID(followed), "RUNNING"), (uuid.UUID(followed), "SUCCEEDED")]
    )
    assert not OutboxEvent.objects.filter(execution_id=other).exists()


def takes_status_changes(function_name: str) -> bool:
    return bool(sinks.sink_names(status_change=True, function_name=function_name))


def test_nobody_listening_to_a_function_makes_no_event_even_at_its_start(only_receivers):
    assert not takes_status_changes(FOLLOWED.name)

    def receiver(sender, **kwargs):
        pass

    execution_status_changed.connect(receiver, sender=OTHER)
    try:
        assert takes_status_changes(OTHER.name)
        assert not takes_status_changes(FOLLOWED.name)
        assert not takes_status_changes("tests.signal_senders.not_registered")
        run(FOLLOWED)
    finally:
        execution_status_changed.disconnect(receiver, sender=OTHER)
    assert OutboxEvent.objects.count() == 0


def test_a_receiver_without_a_sender_hears_every_function(only_receivers):
    seen: list[tuple[object, str]] = []

    def receiver(sender, **kwargs):
        seen.append((sender, kwargs["status"]))

    execution_status_changed.connect(receiver)
    try:
        run(FOLLOWED)
        run(OTHER)
    finally:
        execution_status_changed.disconnect(receiver)
    assert seen == [(FOLLOWED, "RUNNING"), (FOLLOWED, "SUCCEEDED"), (OTHER, "RUNNING"), (OTHER, "SUCCEEDED")]


def test_the_pass_sends_a_stored_event_to_its_functions_receivers(heard, monkeypatch, settings):
    settings.DURABLE = {**settings.DURABLE, "EVENT_AFTER_COMMIT_GRACE": 0}  # the pass may take them at once
    with DurableTestRunner(FOLLOWED) as runner:
        # The committing process "dies" after each commit: the pass sends the stored events.
        monkeypatch.setattr(sinks, "deliver_after_commit", lambda written, found=None: None)
        result = runner.run(json.dumps({}))
        assert heard == []
        monkeypatch.undo()
        report = sinks.deliver_due()
    assert report.attempted == 2
    assert heard == [(FOLLOWED, FOLLOWED.name, "RUNNING"), (FOLLOWED, FOLLOWED.name, "SUCCEEDED")]
    delivered = EventDelivery.objects.filter(event__execution_id=result.execution_id)
    assert set(delivered.values_list("status", flat=True)) == {"DELIVERED"}
