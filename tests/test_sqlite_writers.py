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


def write_in_thread(background: bool, done: list[str], name: str) -> threading.Thread:
    """A writer on a connection of its own (as another process's would be), `background` as a
    worker's (durable.backends.sqlite3.base.set_background)."""

    def write() -> None:
        try:
            connection.background = background
            with transaction.atomic():
                make_waiting(1)
            done.append(name)
        finally:
            connection.close()

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def test_background_writers_queue_among_themselves_first_and_a_request_does_not(lock_path):
    gate_path = f"{connection.settings_dict['NAME']}-workers.lock"
    fd = os.open(gate_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a worker of another process has the background writers' turn
    done: list[str] = []
    try:
        worker = write_in_thread(True, done, "worker")
        time.sleep(0.3)
        assert done == []  # the writers' lock is free, but it waits for its turn among workers
        assert not held_elsewhere(lock_path)
        request = write_in_thread(False, done, "request")
        request.join(5)
        assert done == ["request"]  # a request's write does not queue behind workers
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    worker.join(5)
    assert done == ["request", "worker"]
    assert Execution.objects.count() == 2
    assert held(gate_path, lock_path) == [False, False]


def held(*paths: str) -> list[bool]:
    return [held_elsewhere(path) for path in paths]


def test_a_background_write_holds_its_turn_until_it_commits_or_rolls_back(lock_path):
    gate_path = f"{connection.settings_dict['NAME']}-workers.lock"

    def write_then_fail() -> None:
        with transaction.atomic():
            make_waiting(1)
            assert held(gate_path, lock_path) == [True, True]
            raise ZeroDivisionError

    connection.background = True
    try:
        with transaction.atomic():
            make_waiting(1)
            assert held(gate_path, lock_path) == [True, True]
        assert held(gate_path, lock_path) == [False, False]
        with pytest.raises(ZeroDivisionError):
            write_then_fail()
        assert held(gate_path, lock_path) == [False, False]
    finally:
        connection.background = None
    with transaction.atomic():  # a request's write takes the writers' lock only
        make_waiting(1)
        assert held(gate_path, lock_path) == [False, True]
    assert Execution.objects.count() == 2


@pytest.mark.processes
@pytest.mark.timeout(60)
def test_a_worker_process_writes_as_background_work(lock_path, workers, redis_server):
    from durable.client import start_execution
    from tests import workflows
    from tests.processes import blocked_on_the_queue, wait_until

    gate_path = f"{connection.settings_dict['NAME']}-workers.lock"
    fd = os.open(gate_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the background writers' turn, held here
    try:
        workers(1)
        client = redis_server.client()
        wait_until(lambda: blocked_on_the_queue(client) == 1, 30, message="the worker to wait for a job")
        execution = start_execution(workflows.three_steps, {})  # a request's write: not held up
        # The worker takes the job off the queue and stops waiting for one...
        wait_until(
            lambda: client.llen("rq:queue:default") == 0 and blocked_on_the_queue(client) == 0, 10, message="the take"
        )
        time.sleep(0.5)  # ...then, unmarked, it would take the lease in a few milliseconds
        assert Execution.objects.filter(pk=execution.pk, status="RUNNING", invocation_count=0).exists()
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    wait_until(
        lambda: Execution.objects.filter(pk=execution.pk, status="SUCCEEDED").exists(), 30, message="the execution"
    )
