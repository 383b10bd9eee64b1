"""Riding out outages: bounded back-off, and which database errors mean "unreachable"."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest
from django.db import OperationalError

from durable.client import get_execution, start_execution
from durable.exceptions import DatabaseUnreachableError
from durable.rq import outage
from durable.rq.jobs import invoke_once, queue
from durable.store import journal_store
from durable.store.base import SqlJournalStore
from tests import workflows


def test_pauses_double_up_to_their_bound_and_start_short_again_after_a_recovery(monkeypatch, caplog):
    slept: list[float] = []
    # The module's own `time` only: patching time.sleep itself made every thread of the test
    # process (the lease keeper's loop) sleep no more while this ran, adding its ticks to the list.
    monkeypatch.setattr(outage, "time", SimpleNamespace(sleep=slept.append, monotonic=time.monotonic))
    backoff = outage.Backoff("Redis", logging.getLogger("test"))
    with caplog.at_level(logging.WARNING, logger="test"):
        for _ in range(8):
            backoff.pause(ConnectionError("refused"))
        backoff.recovered()
        backoff.pause(ConnectionError("refused"))
    assert slept == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0, 0.1]
    messages = [r.getMessage() for r in caplog.records]
    # Said once when it starts (not per pause), once when it ends.
    assert messages[0] == "Redis is unreachable (refused); waiting for it, with back-off"
    assert messages[1].startswith("Redis is reachable again after")
    assert len(messages) == 3


def test_a_check_that_answers_ends_the_outage_but_not_the_growth_of_the_pauses(monkeypatch, caplog):
    slept: list[float] = []
    monkeypatch.setattr(outage, "time", SimpleNamespace(sleep=slept.append, monotonic=time.monotonic))
    backoff = outage.Backoff("the database", logging.getLogger("test"))
    with caplog.at_level(logging.WARNING, logger="test"):
        backoff.pause(ConnectionError("refused"))
        backoff.answered()
        backoff.pause(ConnectionError("locked"))  # the work failed again: a new outage, said again
        backoff.answered()
        backoff.recovered()  # already said: not said twice
        backoff.pause(ConnectionError("refused"))
    assert slept == [0.1, 0.2, 0.1]
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(" (")[0].split(" after")[0] for m in messages] == [
        "the database is unreachable",
        "the database is reachable again",
        "the database is unreachable",
        "the database is reachable again",
        "the database is unreachable",
    ]


@pytest.mark.django_db(transaction=True)
def test_a_worker_says_the_database_is_back_when_it_answers_not_when_a_job_next_comes(
    redis_dispatch, monkeypatch, caplog
):
    """Other workers may run every queued wake-up while this one pauses; it must not stay silent
    (and look still in the outage) for as long as the queue then stays empty."""
    from durable.rq.worker import DurableWorker

    q = queue()
    worker = DurableWorker([q], connection=q.connection)
    monkeypatch.setattr(outage, "time", SimpleNamespace(sleep=lambda s: None, monotonic=time.monotonic))
    worker._database_error = DatabaseUnreachableError("connection refused")  # as a failed lease leaves it
    with caplog.at_level(logging.WARNING, logger="durable.worker"):
        worker._wait_for_database()
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("the database is unreachable (connection refused)")
    assert messages[1].startswith("the database is reachable again after")
    assert worker._database_error is None


@pytest.mark.django_db(transaction=True)
def test_the_database_answers():
    assert outage.database_reachable()


@pytest.mark.django_db(transaction=True)
def test_only_a_connection_error_taking_the_lease_means_the_database_is_unreachable(monkeypatch):
    execution = start_execution(workflows.three_steps, {})

    def refused(*args, **kwargs):
        raise OperationalError("connection refused")

    # Taking the lease fails: nothing ran, the wake-up is still good.
    with monkeypatch.context() as patch:
        patch.setattr(type(journal_store()), "_take_lease", refused)  # acquire_lease's statement
        with pytest.raises(DatabaseUnreachableError, match="connection refused"):
            invoke_once(str(execution.pk))
    assert get_execution(execution.pk).invocation_count == 0

    # The same error later in the invocation (the lease was taken; on PostgreSQL with the journal
    # in the same round trip): an invocation that failed.
    with monkeypatch.context() as patch:
        patch.setattr(SqlJournalStore, "leased", refused)
        assert invoke_once(str(execution.pk)) == "error"
    assert get_execution(execution.pk).invocation_count == 1
