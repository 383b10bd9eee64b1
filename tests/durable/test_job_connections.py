"""A job checks its reused database connection as Django does per request, but a connection the
last job used a moment ago skips the health check (a SELECT 1 round trip on PostgreSQL)."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from durable.client import get_execution, start_execution
from durable.rq import jobs
from tests import workflows

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def health_checks(monkeypatch):
    """How many times the connection's health was checked (is_usable: SELECT 1 on PostgreSQL)."""
    checks: list[int] = []
    real = connection.is_usable

    def counted() -> bool:
        checks.append(1)
        return real()

    monkeypatch.setattr(connection, "is_usable", counted)
    return checks


def test_back_to_back_jobs_check_the_connection_once(health_checks, monkeypatch):
    monkeypatch.setattr(jobs, "_last_job_ended", time.monotonic() - jobs.HEALTH_CHECK_AFTER_IDLE - 1)
    ids = [str(start_execution(workflows.three_steps, {}).pk) for _ in range(3)]
    for execution_id in ids:
        assert jobs.invoke_once(execution_id) == "SUCCEEDED"
    assert len(health_checks) == 1  # the first job's, after a pause
    assert all(get_execution(i).status == "SUCCEEDED" for i in ids)


def test_a_job_after_a_pause_checks_the_connection(health_checks, monkeypatch):
    execution_id = str(start_execution(workflows.three_steps, {}).pk)
    assert jobs.invoke_once(execution_id) == "SUCCEEDED"
    second = str(start_execution(workflows.three_steps, {}).pk)
    health_checks.clear()
    monkeypatch.setattr(jobs, "_last_job_ended", time.monotonic() - jobs.HEALTH_CHECK_AFTER_IDLE - 1)
    assert jobs.invoke_once(second) == "SUCCEEDED"
    assert len(health_checks) == 1


def test_a_connection_that_had_an_error_is_checked_whatever_the_pause(health_checks):
    connection.ensure_connection()
    connection.errors_occurred = True
    jobs._last_job_ended = time.monotonic()
    jobs.check_connections()
    assert health_checks == [1]  # Django's check after an error, as before
    assert connection.errors_occurred is False
