"""A database restart with wake-ups queued: the workers wait for the database instead of using the
wake-ups up, and run them once it is back. PostgreSQL only (SQLite has no server to restart):
run under scripts/with-postgres, as `make test` does for tests/chaos.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection

from durable.client import start_execution
from durable.models import Execution
from durable.rq.dispatch import dispatch_many
from durable.rq.jobs import queue
from tests import workflows
from tests.chaos import postgres
from tests.processes import blocked_on_the_queue, wait_until

pytestmark = [pytest.mark.processes, pytest.mark.timeout(300)]

WAKE_UPS = 40
FAILED = re.compile(r"invocation of \S+ failed")


def test_wake_ups_queued_while_the_database_restarts_wait_for_it_and_run(workers, redis_server, settings):
    postgres.require_postgresql()
    # A sweep every ten minutes: a wake-up used up by the outage would not run again in this test.
    pool = workers(2, DURABLE_SWEEP_INTERVAL="600")
    client = redis_server.client()
    wait_until(lambda: blocked_on_the_queue(client) == 2, 30, message="both workers idle")
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "DISPATCHER": None}  # the wake-ups are queued below
    executions = [start_execution(workflows.three_steps, {}) for _ in range(WAKE_UPS)]
    ids = [str(e.pk) for e in executions]

    postgres.stop()
    try:
        dispatch_many([(str(e.pk), e.wake_at, 0) for e in executions])
        # Each worker takes one, cannot take its lease, puts it back and waits for the database.
        for worker in pool:
            wait_until(lambda w=worker: "back on the queue" in w.output(), 30, message="a wake-up put back")
        assert queue().count == WAKE_UPS  # none used up
    finally:
        postgres.start()
        connection.close()  # the test's own connection died with the server

    wait_until(
        lambda: Execution.objects.filter(pk__in=ids, status="SUCCEEDED").count() == WAKE_UPS,
        60,
        message="every queued wake-up to run once the database is back",
    )
    for worker in pool:
        # The other worker may have run every wake-up while this one still waited out its
        # back-off: it says so when its next check answers (within a pause), not necessarily by now.
        wait_until(lambda w=worker: "the database is reachable again" in w.output(), 30, message="back-off ended")
        output = worker.output()
        assert not FAILED.findall(output), output
