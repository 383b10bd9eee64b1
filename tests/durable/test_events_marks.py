"""A process records the deliveries of several commits in one UPDATE (durable.sinks): a worker
flushes them itself (hold_marks), any other process has a flusher thread and flushes at exit;
a mark lost with its process means the event is delivered again, never lost."""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from durable import conf, sinks
from durable.client import start_execution
from durable.models import EventDelivery
from durable.runtime import run_invocation
from durable.testing import DurableTestRunner
from tests.durable import event_workflows
from tests.processes import database_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def holding(monkeypatch):
    """This process holds its marks, as the engine's worker does; nothing is left held after."""
    monkeypatch.setattr(sinks, "MARK_SECONDS", 600.0)  # only the count or a flush records them here
    sinks._cooling.clear()
    sinks._held.clear()
    sinks.hold_marks(True)
    yield
    sinks._held.clear()
    sinks.hold_marks(False)


def marks(queries: CaptureQueriesContext) -> int:
    """The UPDATEs of delivery rows among these queries."""
    return sum(1 for q in queries.captured_queries if q["sql"].startswith('UPDATE "durable_eventdelivery"'))


def run_one(event: dict | None = None) -> str:
    """Start an execution and run its invocation here, as a worker's job does (no flush after)."""
    execution_id = str(start_execution(event_workflows.outcome, event or {}).pk)
    assert run_invocation(execution_id).status == "SUCCEEDED"
    return execution_id


def test_many_commits_deliveries_are_recorded_in_one_update(signals_sent):
    with CaptureQueriesContext(connection) as during:
        for _ in range(5):
            run_one()
    assert len(signals_sent) == 10  # sent right after each commit, as ever
    assert marks(during) == 0
    assert set(EventDelivery.objects.values_list("status", "attempts")) == {("PENDING", 0)}
    with CaptureQueriesContext(connection) as flush:
        sinks.flush_marks()
    assert marks(flush) == 1
    assert EventDelivery.objects.count() == 10
    assert set(EventDelivery.objects.values_list("status", "attempts")) == {("DELIVERED", 1)}
    assert sinks._held == []


def test_marks_are_recorded_once_a_batch_is_held(signals_sent, monkeypatch):
    monkeypatch.setattr(sinks, "MARK_BATCH", 4)
    with CaptureQueriesContext(connection) as during:
        for _ in range(3):
            run_one()  # 2 events each: recorded after the 2nd run, 2 held
    assert marks(during) == 1
    assert EventDelivery.objects.filter(status="DELIVERED").count() == 4
    assert len(sinks._held) == 2


def test_a_flush_due_only_waits_for_the_batch_or_the_time(signals_sent, monkeypatch):
    run_one()
    sinks.flush_marks(due_only=True)
    assert EventDelivery.objects.filter(status="PENDING").count() == 2
    monkeypatch.setattr(sinks, "MARK_SECONDS", 0.0)
    sinks.flush_marks(due_only=True)
    assert EventDelivery.objects.filter(status="DELIVERED").count() == 2


def test_marks_are_not_held_when_the_pass_would_not_wait_for_them(settings, signals_sent):
    settings.DURABLE = {**settings.DURABLE, "EVENT_AFTER_COMMIT_GRACE": 0}
    with CaptureQueriesContext(connection) as during:
        run_one()
    assert marks(during) == 2  # one per commit, at once
    assert sinks._held == []


def test_an_event_whose_mark_was_lost_is_delivered_again(signals_sent):
    grace = float(conf.get("EVENT_AFTER_COMMIT_GRACE"))
    with DurableTestRunner(event_workflows.outcome) as runner:
        result = runner.run_async(json.dumps({}))
        run_invocation(result)  # as a worker's job: the runner would flush
        assert [s["status"] for s in signals_sent] == ["RUNNING", "SUCCEEDED"]
        sinks._held.clear()  # the worker is killed before it flushes: its marks are gone
        sinks.hold_marks(False)
        assert set(EventDelivery.objects.values_list("status", "attempts")) == {("PENDING", 0)}
        assert sinks.deliver_due().attempted == 0  # within the grace the pass leaves them alone
        runner.clock.advance_to(runner.clock.current + timedelta(seconds=grace + 1))
        report = sinks.deliver_due()
    assert report.attempted == 2
    assert signals_sent[2:] == signals_sent[:2]  # the same events again: receivers dedupe by id
    rows = EventDelivery.objects.filter(event__execution_id=result)
    assert set(rows.values_list("status", "attempts")) == {("DELIVERED", 1)}


def test_a_process_without_a_worker_loop_records_its_marks_from_a_flusher_thread(signals_sent, monkeypatch):
    """A web process starting executions: no UPDATE at each start, the flusher records them."""
    monkeypatch.setattr(sinks, "MARK_SECONDS", 0.3)
    sinks.hold_marks(False)  # no worker loop here
    with CaptureQueriesContext(connection) as during:
        ids = [str(start_execution(event_workflows.outcome, {}).pk) for _ in range(3)]
    assert len(signals_sent) == 3  # sent right after each start's commit
    assert marks(during) == 0
    assert EventDelivery.objects.filter(event__execution_id__in=ids, status="PENDING").count() == 3
    deadline = time.monotonic() + 10
    while EventDelivery.objects.filter(status="PENDING").exists():  # the flusher's 0.3 s, bounded
        assert time.monotonic() < deadline, "the flusher thread did not record the marks"
        time.sleep(0.05)
    assert set(EventDelivery.objects.values_list("status", "attempts")) == {("DELIVERED", 1)}
    assert sinks._held == []
    assert sinks._flusher is not None
    assert sinks._flusher.is_alive()  # one thread, waiting for more


def test_a_process_that_exits_records_its_held_marks_first(transactional_db):
    """A script that starts an execution and exits at once: its mark is recorded at exit, so the
    pass does not deliver the event a second time."""
    script = textwrap.dedent(
        """
        import django
        django.setup()
        from durable import sinks
        from durable.client import start_execution
        from durable.signals import execution_status_changed
        from tests.durable import event_workflows
        sinks.MARK_SECONDS = 600.0  # only the exit records it
        execution_status_changed.connect(lambda sender, **kwargs: None, weak=False)
        print(start_execution(event_workflows.outcome, {}).pk)
        """
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.durable.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "DURABLE_DISPATCHER": "",
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    execution_id = done.stdout.strip().splitlines()[-1]
    rows = EventDelivery.objects.filter(event__execution_id=execution_id)
    assert list(rows.values_list("status", "attempts")) == [("DELIVERED", 1)]


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_starts_with_no_marks_and_a_free_lock():
    with sinks._held_lock:
        sinks._held.append(object())  # type: ignore[arg-type]
        pid = os.fork()
        if pid == 0:  # the child: the parent's marks are the parent's, its lock is not held here
            os._exit(0 if not sinks._held and sinks._held_lock.acquire(blocking=False) else 1)
        sinks._held.clear()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_worker_busy_with_a_long_job_has_its_marks_recorded_meanwhile(signals_sent, monkeypatch):
    """The worker flushes between jobs; during one that outlasts the marks' time, the flusher
    records them, so the pass does not deliver those events a second time after the grace."""
    monkeypatch.setattr(sinks, "MARK_SECONDS", 0.3)
    run_one()  # the previous job's marks, held (hold_marks(True): a worker)
    assert EventDelivery.objects.filter(status="PENDING").count() == 2
    deadline = time.monotonic() + 10
    while EventDelivery.objects.filter(status="PENDING").exists():  # the next job runs meanwhile
        assert time.monotonic() < deadline, "held marks were not recorded during a long job"
        time.sleep(0.05)
    assert set(EventDelivery.objects.values_list("status", "attempts")) == {("DELIVERED", 1)}


def test_marks_held_from_many_threads_are_all_recorded(signals_sent, monkeypatch):
    """A map's or parallel's branches commit from threads of their own: marks added and flushed
    from eight threads at once are each recorded (none lost between a copy and a clear)."""
    ids = [str(start_execution(event_workflows.outcome, {}).pk) for _ in range(40)]
    with sinks._held_lock:
        claims = sinks._held[:]
        sinks._held.clear()
    assert len(claims) == 40  # one start event each, its mark held
    monkeypatch.setattr(sinks, "MARK_BATCH", 3)  # flushes from the threads, in the middle of it all

    def record(chunk) -> None:
        try:
            for claim in chunk:
                sinks._record([claim], [])
        finally:
            connections.close_all()  # this thread's own

    threads = [threading.Thread(target=record, args=(claims[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    sinks.flush_marks()
    rows = EventDelivery.objects.filter(event__execution_id__in=ids)
    assert sorted(rows.values_list("status", "attempts")) == [("DELIVERED", 1)] * 40
    assert sinks._held == []
