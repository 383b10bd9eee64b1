"""The periodic purge in real worker processes: it runs on its own, bounded per run, and two
workers never purge at once (the purge lock in Redis)."""

import itertools

import pytest

from durable import clock, retention
from durable.models import Execution
from tests.durable.retention_helpers import journal_rows, seed
from tests.processes import wait_until

pytestmark = [pytest.mark.processes, pytest.mark.timeout(90)]


def test_workers_purge_periodically_one_at_a_time(workers, tmp_path):
    now = clock.now()
    expired = seed("tests.retention.workers", 40, count=12, now=now)
    young = seed("tests.retention.workers", 20, count=2, now=now)
    running = seed("tests.retention.workers", None, count=2, now=now)
    hook_log = tmp_path / "hold.log"
    hook_log.touch()
    # Two executions a run at most, so the work spreads over several runs and both workers
    # try for the lock many times while another holds it.
    first, second = workers(
        2,
        DURABLE_PURGE_INTERVAL="1",
        DURABLE_PURGE_BATCH_SIZE="1",
        DURABLE_PURGE_MAX_BATCHES="2",
        DURABLE_RETENTION_HOLD="tests.durable.retention_helpers.slow_hold",
        RETENTION_HOOK_LOG=str(hook_log),
    )
    wait_until(lambda: journal_rows(expired) == (0, 0, 0), 60, interval=0.2, message="the periodic purge")
    assert journal_rows(young + running) == (4, 12, 8)
    assert Execution.objects.count() == 4

    calls = [line.split() for line in hook_log.read_text().splitlines()]
    spans = sorted((float(start), float(end), int(pid)) for pid, start, end in calls)
    assert len(spans) >= 12  # one call per batch of one
    for (_, end, pid), (start, _, other) in itertools.pairwise(spans):
        if pid != other:
            assert start >= end, "two workers purged at the same time"
    logged = first.output() + second.output()
    assert "purge: deleted 2 executions" in logged


@pytest.mark.django_db
def test_the_purge_lock_lets_one_purge_per_interval(redis_server, settings):
    settings.DURABLE = {**settings.DURABLE, "PURGE_INTERVAL": 3600}
    connection = redis_server.client()
    connection.flushall()
    ids = seed("tests.retention.workers", 40, count=3, now=clock.now())
    connection.set(retention.LOCK_KEY, "another worker purging")
    assert retention.purge_with_lock(connection) is None
    assert journal_rows(ids)[0] == 3
    connection.delete(retention.LOCK_KEY)
    report = retention.purge_with_lock(connection)
    assert report is not None
    assert report.executions == 3
    # Done: the lock stays for the interval, so no other worker purges before it ends.
    assert connection.get(retention.LOCK_KEY).startswith(b"done ")
    assert 3500_000 < connection.pttl(retention.LOCK_KEY) <= 3600_000
    assert retention.purge_with_lock(connection) is None


@pytest.mark.django_db
def test_a_run_that_left_work_frees_the_lock_and_an_interval_of_0_disables(redis_server, settings):
    settings.DURABLE = {**settings.DURABLE, "PURGE_INTERVAL": 3600, "PURGE_BATCH_SIZE": 1, "PURGE_MAX_BATCHES": 1}
    connection = redis_server.client()
    connection.flushall()
    ids = seed("tests.retention.workers", 40, count=2, now=clock.now())
    first = retention.purge_with_lock(connection)
    assert first is not None
    assert (first.executions, first.more) == (1, True)
    assert connection.get(retention.LOCK_KEY) is None
    settings.DURABLE = {**settings.DURABLE, "PURGE_INTERVAL": 0}
    assert retention.purge_with_lock(connection) is None
    assert retention.purge_try_seconds() == 0
    assert journal_rows(ids)[0] == 1
