"""A worker waiting for a job renews each database connection past half its CONN_MAX_AGE
(durable.rq.jobs.renew_aging_connections), so that no job finds one expired and pays for a new
one before its lease: on PostgreSQL a server process and the statements prepared again, a burst
of timers 11 to 12 ms late in the bench. Connections kept for good, closed after each job, or
inside a transaction are left alone."""

import time

import pytest
from django.db import connection, transaction

from durable.rq.jobs import renew_aging_connections

pytestmark = pytest.mark.django_db(transaction=True)


def opened(close_in: float):
    """The connection, open, as if it had that many seconds left to live; its driver connection."""
    connection.ensure_connection()
    connection.close_at = time.monotonic() + close_in
    return connection.connection


def works() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0] == 1


def test_a_connection_past_half_its_age_is_renewed_while_the_worker_waits():
    max_age = connection.settings_dict["CONN_MAX_AGE"]
    assert max_age is not None
    assert max_age > 2
    old = opened(close_in=max_age / 2 - 1)
    renew_aging_connections()
    assert connection.connection is not None
    assert connection.connection is not old
    assert connection.close_at > time.monotonic() + max_age / 2  # a full age ahead again
    assert works()


def test_a_younger_connection_is_kept():
    max_age = connection.settings_dict["CONN_MAX_AGE"]
    kept = opened(close_in=max_age / 2 + 5)
    renew_aging_connections()
    assert connection.connection is kept


@pytest.mark.parametrize("max_age", [0, None], ids=["closed after each job", "kept for good"])
def test_connections_with_no_age_to_renew_are_left_alone(monkeypatch, max_age):
    kept = opened(close_in=-1.0)
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", max_age)
    renew_aging_connections()
    assert connection.connection is kept


def test_a_connection_inside_a_transaction_is_left_alone():
    max_age = connection.settings_dict["CONN_MAX_AGE"]
    with transaction.atomic():
        kept = opened(close_in=max_age / 2 - 1)
        renew_aging_connections()
        assert connection.connection is kept
        assert works()
