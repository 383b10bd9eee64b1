"""Our SQLite backend: write transactions take turns on a file lock beside the database."""

import fcntl
import os
import threading
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


def test_a_writer_waits_for_the_writer_ahead_and_goes_the_moment_it_lets_go(lock_path):
    fd = os.open(lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process's write transaction
    let_go_at = []

    def finish_elsewhere() -> None:
        time.sleep(0.3)
        let_go_at.append(time.monotonic())
        fcntl.flock(fd, fcntl.LOCK_UN)

    other = threading.Thread(target=finish_elsewhere)
    other.start()
    try:
        with transaction.atomic():
            make_waiting(1)
            took = time.monotonic()
    finally:
        other.join()
        os.close(fd)
    assert let_go_at
    assert 0 <= took - let_go_at[0] < 0.1  # woken at once, not after a sleep
    assert Execution.objects.count() == 1
    assert not held_elsewhere(lock_path)
