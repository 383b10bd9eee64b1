"""Wake-ups sent without waiting for Redis's answer (durable.rq.sender), on a real Redis: the
answer is read later, and a restart, flushed scripts, a fork, threads or an unreachable Redis lose
no wake-up that the wait would have kept. These tests look at the unread answers themselves, so
their Redis commands do not settle them first (`unsettled`, tests/conftest.py)."""

import json
import logging
import os
import textwrap
import threading
import uuid

import pytest

from durable import clock
from durable.client import start_execution
from durable.models import Execution
from durable.rq.dispatch import send_wake_ups, settle
from durable.rq.jobs import job_id, queue
from durable.rq.sender import MAX_UNREAD, sender, unread
from tests import workflows

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("unsettled")]


def queued_ids() -> set[str]:
    return set(queue().get_job_ids())


def wake_up() -> tuple[str, str]:
    execution_id = str(uuid.uuid4())
    return execution_id, job_id(execution_id, clock.now())


def started() -> str:
    execution = start_execution(workflows.three_steps, {})
    return job_id(str(execution.pk), execution.wake_at)


def test_a_start_does_not_wait_for_redis_and_the_next_send_reads_the_answer(redis_dispatch):
    first = started()
    mine = sender(queue().connection)
    assert len(mine.unread) == 1  # sent; its answer not read
    settle()  # what a reader that must see it does first
    assert not mine.unread
    assert queued_ids() == {first}
    second = started()
    third = started()
    assert len(mine.unread) <= 2  # each send reads the answers that have come
    settle()
    assert unread() == 0
    assert queued_ids() == {first, second, third}


def test_a_wake_up_redis_never_answered_is_sent_again_after_it_restarts(redis_dispatch):
    redis_dispatch.client().client_pause(10_000, all=True)  # commands wait, unanswered
    first = started()  # sent, not run: Redis dies before it answers
    redis_dispatch.process.kill()
    redis_dispatch.process.wait(10)
    redis_dispatch.start()
    second = started()  # finds the connection broken: sends the first again, then this one
    settle()
    assert queued_ids() == {first, second}


def test_after_a_redis_restart_the_next_wake_up_goes_to_the_new_one(redis_dispatch):
    started()
    sender(queue().connection).flush()
    redis_dispatch.restart()  # the first job is lost with it: the sweep's, as before
    second = started()
    sender(queue().connection).flush()
    assert queued_ids() == {second}


def test_scripts_flushed_from_redis_are_loaded_again_and_the_wake_up_sent_again(redis_dispatch):
    first = started()
    sender(queue().connection).flush()
    redis_dispatch.client().script_flush()
    second = started()  # its answer: NOSCRIPT, read at the next send
    third = started()
    sender(queue().connection).flush()
    assert queued_ids() == {first, second, third}


def test_unread_answers_stay_bounded_and_every_wake_up_is_queued(redis_dispatch):
    mine = sender(queue().connection)
    sent, most = [], 0
    for _ in range(3 * MAX_UNREAD):
        sent.append(wake_up())
        send_wake_ups([sent[-1]])
        most = max(most, len(mine.unread))
    assert most <= MAX_UNREAD + 1
    mine.flush()
    assert not mine.unread
    assert queued_ids() == {job for _, job in sent}


def test_threads_share_the_process_sender_and_lose_nothing(redis_dispatch):
    sent: list[list[tuple[str, str]]] = [[] for _ in range(4)]
    errors: list[Exception] = []

    def send(mine: list[tuple[str, str]]) -> None:
        try:
            for _ in range(50):
                mine.append(wake_up())
                send_wake_ups([mine[-1]])
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(mine,)) for mine in sent]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert unread() <= MAX_UNREAD + 1
    settle()
    assert unread() == 0
    assert queued_ids() == {job for mine in sent for _, job in mine}


def test_a_forked_child_sends_on_a_connection_of_its_own(redis_dispatch):
    before = wake_up()
    send_wake_ups([before])  # the parent's answer is still unread when it forks
    parent = sender(queue().connection)
    in_child = wake_up()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            send_wake_ups([in_child])
            child = sender(queue().connection)
            child.flush()
            code = 0 if child is not parent and not child.unread else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    after = wake_up()
    send_wake_ups([after])
    assert sender(queue().connection) is parent
    parent.flush()  # reads its own answers: the child read none of them
    assert not parent.unread
    assert queued_ids() == {before[1], in_child[1], after[1]}


def test_a_child_forked_while_its_parent_makes_a_sender_is_not_held_by_its_lock(redis_dispatch):
    import select

    from durable.rq import sender as senders

    in_child = wake_up()
    with senders._senders_lock:  # as if another thread were making a sender as the process forks
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                send_wake_ups([in_child])  # makes its sender: a lock still taken would hang here
                senders.settle()
                code = 0
            finally:
                os._exit(code)
    # Its end, waited for 20 s at most (waitpid has no time-out; a pidfd is readable once it exits).
    exited = os.pidfd_open(pid)
    try:
        select.select([exited], [], [], 20)
    finally:
        os.close(exited)
    done = os.waitpid(pid, os.WNOHANG)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on its parent's lock")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert queued_ids() == {in_child[1]}


def test_an_unreachable_redis_loses_the_wake_up_with_a_warning_and_the_start_stands(redis_dispatch, settings, caplog):
    from tests.processes import free_port

    settings.RQ_QUEUES["default"]["URL"] = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.WARNING, logger="durable.worker"):
        execution = start_execution(workflows.three_steps, {})
    assert Execution.objects.get(pk=execution.pk).status == "RUNNING"  # the sweep's to dispatch
    assert "the sweep will" in caplog.text
    assert not sender(queue().connection).unread


EXITING = textwrap.dedent(
    """
    import json
    import django
    django.setup()
    from durable.client import start_execution
    from durable.rq.jobs import job_id, queue
    from durable.rq.sender import unread
    from tests import workflows

    first = start_execution(workflows.three_steps, {})  # loads the script: its answer is read
    queue().connection.client_pause(500, all=True)  # Redis reads the next one, runs it later
    second = start_execution(workflows.three_steps, {})
    print(json.dumps({"jobs": [job_id(str(e.pk), e.wake_at) for e in (first, second)], "unread": unread()}))
    """
)


def test_a_process_that_exits_reads_its_answers_first_so_no_wake_up_is_dropped(redis_dispatch):
    from django.db import connection

    from tests.processes import run_engine_script

    done = run_engine_script(EXITING, redis_dispatch.url, connection.settings_dict)
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    assert printed["unread"] >= 1  # it exited with an answer to read
    # Closed with the command unread by a paused Redis, the wake-up would have been dropped.
    assert queued_ids() == set(printed["jobs"])


def test_a_process_that_exits_waits_for_a_redis_that_hangs_no_longer_than_the_bound(redis_dispatch):
    import time

    from django.db import connection

    from durable.rq.sender import EXIT_SETTLE_SECONDS
    from tests.processes import run_engine_script

    # A Redis that hangs for 30 s (its writes: the test can still lift the pause).
    script = EXITING.replace("client_pause(500, all=True)", "client_pause(30_000, all=False)")
    assert script != EXITING
    began = time.monotonic()
    done = run_engine_script(script, redis_dispatch.url, connection.settings_dict)
    took = time.monotonic() - began
    assert EXIT_SETTLE_SECONDS <= took < EXIT_SETTLE_SECONDS + 10, took
    assert "the sweep will" in done.stderr  # the wake-up it could not see answered, said so
    redis_dispatch.client().client_unpause()
