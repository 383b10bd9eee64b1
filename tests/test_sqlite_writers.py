"""Our SQLite backend: write transactions take turns on a file lock beside the database."""

import fcntl
import os
import time

import pytest
from django.db import connection, transaction

from durable.models import Execution
from tests.durable.test_sweep import make_waiting

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lock_path():
    if connection.vendor != "sqlite":
        pytest.fail("these tests run on the SQLite tier")
    connection.ensure_connection()
    return f"{connection.settings_dict['NAME']}-writers.lock"


def held_elsewhere(path: str) -> bool:
    """Whether another open file (as another process would have) can take the lock now."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_write_transaction_holds_the_lock_until_it_commits_or_rolls_back(lock_path):
    assert connection.settings_dict["ENGINE"] == "durable.backends.sqlite3"
    assert not held_elsewhere(lock_path)
    with transaction.atomic():
        make_waiting(1)
        assert held_elsewhere(lock_path)
        with transaction.atomic():  # a savepoint takes nothing more
            make_waiting(1)
        assert held_elsewhere(lock_path)
    assert not held_elsewhere(lock_path)
    assert Execution.objects.count() == 2

    def write_then_fail() -> None:
        with transaction.atomic():
            make_waiting(1)
            assert held_elsewhere(lock_path)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        write_then_fail()
    assert not held_elsewhere(lock_path)
    assert Execution.objects.count() == 2  # rolled back


def test_reads_take_no_lock_and_a_closed_connection_lets_go(lock_path):
    fd = os.open(lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert Execution.objects.count() == 0  # a reader does not wait for writers
    finally:
        os.close(fd)
    with transaction.atomic():
        make_waiting(1)
        connection.close()  # Django closes a broken connection in a transaction like this
    assert not held_elsewhere(lock_path)


def test_a_writer_waits_for_the_lock_then_writes_and_never_waits_past_its_timeout(lock_path):
    fd = os.open(lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    waited = connection._lock_wait
    connection._lock_wait = 0.2
    try:
        started = time.monotonic()
        with transaction.atomic():  # the lock stays taken: SQLite's own lock decides, and is free
            make_waiting(1)
        assert 0.2 <= time.monotonic() - started < 5
    finally:
        connection._lock_wait = waited
        os.close(fd)
    assert Execution.objects.count() == 1
    assert not held_elsewhere(lock_path)
