"""A worker's next lease rides with its running invocation's last write.

The worker knows the job it runs next before that write (it sends for it as the write begins:
durable.rq.worker), and `runtime.ENDING` hands the write that job's execution. The write takes
its lease in the same transaction (on PostgreSQL in the same query), and the next invocation
uses that lease instead of taking one: one transaction, one round trip less per invocation.

In-process on real SQLite and PostgreSQL; the worker's side with a real worker on a real Redis.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from durable import DurableContext, clock, durable_execution, runtime
from durable.client import start_execution
from durable.models import Execution
from durable.runtime import default_owner, run_invocation
from durable.store import journal_store
from durable.store.base import SqlJournalStore
from tests.durable.helpers import sent_statements
from tests.durable.test_runtime import three_steps

# Not wrapped in a test transaction: the writes commit as a worker's do.
pytestmark = pytest.mark.django_db(transaction=True)

LEASE = '"INVOCATION_COUNT" = "INVOCATION_COUNT" + 1'  # the lease's UPDATE, and only it


@contextmanager
def next_job(execution_id: str | None) -> Iterator[list[str | None]]:
    """As the worker's hook: the next job's execution, named as the last write begins."""
    asked: list[str | None] = []

    def ending():
        def next_execution() -> str | None:
            asked.append(execution_id)
            return execution_id

        return next_execution

    token = runtime.ENDING.set(ending)
    try:
        yield asked
    finally:
        runtime.ENDING.reset(token)


@pytest.fixture(autouse=True)
def _nothing_handed_over():
    yield
    journal_store().let_go_handed_lease()


def test_the_last_write_takes_the_next_lease_and_the_next_invocation_takes_none():
    first = str(start_execution(three_steps, {}).pk)
    second = str(start_execution(three_steps, {}).pk)
    with next_job(second) as asked, CaptureQueriesContext(connection) as captured:
        assert run_invocation(first).status == "SUCCEEDED"
    assert asked == [second]  # asked once, as the last write began
    sqls = sent_statements(captured)
    # The first invocation's own lease first; the second's in its last write.
    assert next(q for q in sqls if LEASE in q) == sqls[0]
    if connection.vendor == "postgresql":
        # The end and the next lease (and its journal's read) are one query: a round trip.
        assert len(sqls) == 4, sqls
        assert sqls[-1].startswith("WITH FENCED AS (UPDATE"), sqls[-1]
        assert LEASE in sqls[-1], sqls[-1]
    else:
        # In the end's transaction: after its fence, before its commit.
        assert LEASE in sqls[-1], sqls[-2:]
        assert sum(LEASE in q for q in sqls) == 2
    taken = Execution.objects.get(pk=second)
    assert taken.lease_token is not None
    assert (taken.lease_owner, taken.invocation_count, taken.consecutive_deaths) == (default_owner(), 1, 0)

    with CaptureQueriesContext(connection) as captured:
        assert run_invocation(second).status == "SUCCEEDED"
    assert not [q for q in sent_statements(captured) if LEASE in q]  # no lease taken: it had one
    done = Execution.objects.get(pk=second)
    assert (done.status, done.result, done.invocation_count, done.lease_token) == ("SUCCEEDED", "3", 1, None)
    assert Execution.objects.get(pk=first).status == "SUCCEEDED"


def test_an_invocation_of_the_same_execution_next_takes_its_lease_again_in_its_end():
    """A job for the execution that is ending (a callback completed meanwhile, say): its end lets
    its lease go and takes a new one, in that order, in one transaction."""
    execution = str(start_execution(three_steps, {}).pk)
    with next_job(execution):
        assert run_invocation(execution).status == "SUCCEEDED"
    # It ended: the lease's UPDATE requires RUNNING, so nothing was taken, and nothing is kept.
    row = Execution.objects.get(pk=execution)
    assert (row.status, row.lease_token, row.invocation_count) == ("SUCCEEDED", None, 1)
    assert journal_store()._handed is None


def test_a_next_lease_held_elsewhere_is_not_taken_and_the_end_is_written():
    first = str(start_execution(three_steps, {}).pk)
    second = str(start_execution(three_steps, {}).pk)
    held = journal_store().acquire_lease(second, "elsewhere", clock.now(), 60)
    assert held is not None
    with next_job(second):
        assert run_invocation(first).status == "SUCCEEDED"
    assert journal_store()._handed is None
    row = Execution.objects.get(pk=second)
    assert (row.lease_token, row.lease_owner, row.invocation_count) == (held.token, "elsewhere", 1)
    assert run_invocation(second).ran is False  # still held elsewhere: this worker takes nothing
    assert journal_store().expire_lease(second, held.token, clock.now() - timedelta(seconds=1))


def test_a_lost_lease_at_the_end_takes_no_next_lease():
    first = str(start_execution(three_steps, {}).pk)
    second = str(start_execution(three_steps, {}).pk)
    stolen = []

    @durable_execution(name="tests.handover.loses_its_lease")
    def loses_its_lease(event, context: DurableContext):
        context.step(lambda _: 1, name="one")
        # Another worker takes over before the end: the end's fence fails, and nothing is written.
        Execution.objects.filter(pk=context.state.execution_id).update(lease_token="someone else's")
        stolen.append(1)
        return 2

    loser = str(start_execution(loses_its_lease, {}).pk)
    with next_job(second):
        outcome = run_invocation(loser)
    assert stolen
    assert outcome.status is None  # the lease was lost
    row = Execution.objects.get(pk=second)
    assert (row.lease_token, row.invocation_count) == (None, 0)  # rolled back with the end
    assert journal_store()._handed is None
    assert run_invocation(second).status == "SUCCEEDED"  # takes its own lease
    assert Execution.objects.get(pk=second).invocation_count == 1
    assert run_invocation(first).status == "SUCCEEDED"


def test_a_lease_taken_ahead_for_a_job_not_run_next_is_let_go_as_if_never_taken():
    first = str(start_execution(three_steps, {}).pk)
    second = str(start_execution(three_steps, {}).pk)
    third = str(start_execution(three_steps, {}).pk)
    with next_job(second):
        assert run_invocation(first).status == "SUCCEEDED"
    assert Execution.objects.get(pk=second).lease_token is not None
    # Another job comes next instead (the second's was put back): the second is free at once,
    # its count as before, and no death is counted when it runs.
    assert run_invocation(third).status == "SUCCEEDED"
    row = Execution.objects.get(pk=second)
    assert (row.lease_token, row.lease_owner, row.lease_expires_at, row.invocation_count) == (None, None, None, 0)
    assert run_invocation(second).status == "SUCCEEDED"
    row = Execution.objects.get(pk=second)
    assert (row.invocation_count, row.consecutive_deaths) == (1, 0)


def test_an_end_that_fails_with_the_next_lease_is_written_again_without_it(monkeypatch):
    """The next lease never costs an end: a write that fails with it is written alone."""
    first = str(start_execution(three_steps, {}).pk)
    second = str(start_execution(three_steps, {}).pk)
    real = SqlJournalStore.next_lease

    def broken(self, execution_id, owner, now, ttl_seconds):
        lease = real(self, execution_id, owner, now, ttl_seconds)
        assert lease is not None
        return type(lease)(lease.execution_id, lease.token, [*lease.params[:4], object(), *lease.params[5:]])

    monkeypatch.setattr(SqlJournalStore, "next_lease", broken)
    with next_job(second):
        outcome = run_invocation(first)
    assert outcome.status == "SUCCEEDED"
    assert Execution.objects.get(pk=first).status == "SUCCEEDED"
    assert Execution.objects.get(pk=second).lease_token is None
    assert journal_store()._handed is None
