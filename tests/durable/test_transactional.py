"""Transactional steps: the body's database writes commit with the SUCCEEDED checkpoint."""

import json

import pytest
from django.contrib.auth.models import Group

from durable import DurableContext, StepConfig, StepContext, durable_execution
from durable.config import JitterStrategy
from durable.models import Operation
from durable.retries import RetryStrategyConfig, create_retry_strategy
from durable.store import sql as journal_sql
from durable.testing import DurableTestRunner
from tests.durable.helpers import Crash, crash_then_expire_lease

# Real transactions: a crash must behave as it does in production, with no outer test transaction.
pytestmark = pytest.mark.django_db(transaction=True)


def written():
    """The side effects: rows of auth's Group table named after the event (not the app's groups)."""
    return Group.objects.filter(name__startswith="doc-")


RETRY = create_retry_strategy(RetryStrategyConfig(max_attempts=3, jitter_strategy=JitterStrategy.NONE))


@durable_execution(name="tests.transactional.persist")
def persist(event: dict, context: DurableContext) -> int:
    def write(step: StepContext) -> int:
        # The name counts earlier rows, so a re-run never collides with a committed write.
        group = Group.objects.create(name=f"{event['name']}-{step.attempt}-{written().count()}")
        if step.attempt < event.get("fail_until", 0):
            raise RuntimeError("the body failed after writing")
        return group.pk

    config = StepConfig(retry_strategy=RETRY, transactional=event.get("transactional", True))
    return context.step(write, name="persist", config=config)


def test_writes_roll_back_with_a_failed_attempt_and_commit_once_with_the_good_one():
    with DurableTestRunner(persist) as runner:
        result = runner.run(json.dumps({"name": "doc", "fail_until": 3}))
    assert result.status == "SUCCEEDED"
    assert list(written().values_list("name", flat=True)) == ["doc-3-0"]
    assert json.loads(result.result) == written().get().pk


@pytest.fixture
def crash_at_first_checkpoint_write(monkeypatch):
    """The worker dies after the step body ran and before its checkpoint is on disk."""
    real = journal_sql.checkpoint_rows  # every journal write builds its statements with it
    state = {"crashed": False}

    def save(execution_id, checkpoints):
        if not state["crashed"] and any(c.record.status == "SUCCEEDED" for c in checkpoints):
            state["crashed"] = True
            raise Crash
        return real(execution_id, checkpoints)

    monkeypatch.setattr(journal_sql, "checkpoint_rows", save)
    return state


@pytest.mark.parametrize(("transactional", "groups"), [(True, 1), (False, 2)])
def test_a_crash_between_body_and_checkpoint(crash_at_first_checkpoint_write, transactional, groups):
    with DurableTestRunner(persist) as runner:
        execution_id = runner.run_async(json.dumps({"name": "doc", "transactional": transactional}))
        crash_then_expire_lease(runner, execution_id)
        result = runner.wait_for_result(execution_id)
    assert crash_at_first_checkpoint_write["crashed"]
    assert result.status == "SUCCEEDED"
    # Transactional: the write died with the checkpoint, then happened exactly once.
    # Not transactional: at least once, so the write happened twice.
    assert written().count() == groups
    assert Operation.objects.get(execution_id=execution_id, name="persist").attempt == 1
