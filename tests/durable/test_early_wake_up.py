"""An invocation whose wake-up reached it before its time (the timer mover's lead,
durable.rq.timers; a clock a little ahead on another machine) naps until that time, holding the
lease, with everything but the handler's code done first: the lease and the journal's read. The
code after the wait never runs early. One that came further ahead than the worker naps suspends
again, and its wake-up is scheduled anew. The lead's setting is checked at start-up."""

import json
import threading
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext

from durable import conf
from durable.client import start_execution
from durable.models import Execution, Operation
from durable.rq.timers import timer_lead
from durable.runtime import run_invocation
from durable.store.postgresql import readable
from tests import workflows

pytestmark = pytest.mark.django_db

READS_JOURNAL = 'FROM "durable_operation"'


def suspended_at_its_wait(seconds_before: float) -> Execution:
    """A `timed` execution suspended at its 1 s wait, `seconds_before` its wake-up."""
    execution = start_execution(workflows.timed, {"seconds": 1})
    assert run_invocation(str(execution.pk)).status == "RUNNING"
    execution = Execution.objects.get(pk=execution.pk)
    time.sleep(max(0.0, execution.wake_at.timestamp() - seconds_before - time.time()))
    return execution


def test_an_invocation_that_came_early_reads_its_journal_then_naps_until_its_time(monkeypatch):
    execution = suspended_at_its_wait(0.3)
    naps: list[tuple[float, int]] = []
    sleep, invoking = time.sleep, threading.get_ident()
    with CaptureQueriesContext(connection) as queries:

        def nap(seconds: float) -> None:
            if threading.get_ident() == invoking:  # (other threads sleep too: a lease keeper's)
                naps.append((seconds, len(queries.captured_queries)))
            sleep(seconds)

        monkeypatch.setattr(time, "sleep", nap)
        outcome = run_invocation(str(execution.pk), wait_if_early=1.5)
        monkeypatch.undo()
    assert outcome.status == "SUCCEEDED"
    assert len(naps) == 1
    seconds, queries_before = naps[0]
    assert 0 < seconds <= 0.3
    sql = [readable(query["sql"]) for query in queries.captured_queries]
    # The journal was read before the nap (SQLite reads it apart from the lease; PostgreSQL in
    # the lease's own query), and nothing but the last write came after it.
    assert any(READS_JOURNAL in text for text in sql[:queries_before]), sql[:queries_before]
    assert not any(READS_JOURNAL in text for text in sql[queries_before:]), sql[queries_before:]
    done = Execution.objects.get(pk=execution.pk)
    wait = Operation.objects.get(execution_id=execution.pk, name="timer")
    assert json.loads(done.result)["after"] >= wait.wait_until.timestamp()
    assert done.invocation_count == 2


def test_an_invocation_that_came_earlier_than_it_naps_suspends_again():
    execution = suspended_at_its_wait(0.6)
    started = time.monotonic()
    outcome = run_invocation(str(execution.pk), wait_if_early=0.1)
    assert time.monotonic() - started < 0.5  # no nap
    assert outcome.status == "RUNNING"
    assert outcome.wake_at == execution.wake_at  # its wake-up scheduled again, for the same time
    wait = Operation.objects.get(execution_id=execution.pk, name="timer")
    assert wait.status == "STARTED"
    assert not Operation.objects.filter(execution_id=execution.pk, name="after").exists()


@pytest.mark.parametrize("value", [-1, 1000.5, "5 ms", None])
def test_a_lead_out_of_range_in_the_settings_stops_the_project_at_start_up(settings, value):
    settings.DURABLE = {**settings.DURABLE, "TIMER_LEAD_MS": value}
    with pytest.raises(ImproperlyConfigured, match="TIMER_LEAD_MS"):
        conf.SETTINGS.check()


@pytest.mark.parametrize("text", ["-1", "1001", "soon"])
def test_a_lead_variable_out_of_range_stops_the_project_at_start_up(monkeypatch, text):
    monkeypatch.setenv("DURABLE_TIMER_LEAD_MS", text)
    with pytest.raises(ImproperlyConfigured, match="DURABLE_TIMER_LEAD_MS"):
        conf.SETTINGS.check()


@pytest.mark.parametrize(
    ("source", "value", "seconds"), [("dict", 0, 0.0), ("dict", 12.5, 0.0125), ("env", "250", 0.25)]
)
def test_a_lead_in_range_is_what_the_mover_uses(settings, monkeypatch, source, value, seconds):
    if source == "dict":
        settings.DURABLE = {**settings.DURABLE, "TIMER_LEAD_MS": value}
    else:
        monkeypatch.setenv("DURABLE_TIMER_LEAD_MS", value)
    conf.SETTINGS.check()
    assert timer_lead() == seconds
