"""Retention: the purge deletes exactly the ended executions past their function's period (with
their operations and history), batch by batch, never a running or held one; periods are checked."""

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext

from durable import DurableContext, InvokeConfig, client, clock, durable_execution, retention
from durable.config import Duration
from durable.exceptions import InvokeError, ValidationError
from durable.execution import validate_retention
from durable.models import Execution, ExecutionStatus, Operation
from durable.store import purge as purge_store
from durable.testing import DurableTestRunner
from tests.durable.retention_helpers import journal_rows, seed

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]

HELD: set[str] = set()
HOLD_CALLS: list[list[str]] = []


def hold(execution_ids: list[str]) -> set[str]:
    """The hook under test: keeps the ids in HELD."""
    HOLD_CALLS.append(list(execution_ids))
    return {pk for pk in execution_ids if pk in HELD}


@durable_execution(name="tests.retention.weekly", retention_period=7)
def weekly(event: dict, context: DurableContext) -> None:
    return None


@durable_execution(name="tests.retention.overridden", retention_period=Duration.from_days(90))
def overridden(event: dict, context: DurableContext) -> None:
    return None


@pytest.fixture
def hooked(settings):
    HELD.clear()
    HOLD_CALLS.clear()
    settings.DURABLE = {
        **settings.DURABLE,
        "RETENTION_HOLD": f"{__name__}.hold",
        "RETENTION_BY_FUNCTION": {"tests.retention.overridden": 2},
    }


def test_purge_removes_exactly_the_expired_unheld_ended_executions(hooked):
    now = clock.now()
    # Default (30 days): an unregistered function's executions.
    old_default = seed("tests.retention.gone", 31, count=4, now=now)
    young_default = seed("tests.retention.gone", 29, count=3, now=now)
    # 7 days from the decorator.
    old_weekly = seed("tests.retention.weekly", 8, count=4, now=now)
    young_weekly = seed("tests.retention.weekly", 6, count=2, now=now)
    # The decorator says 90, settings say 2: settings win.
    old_overridden = seed("tests.retention.overridden", 3, count=2, now=now)
    young_overridden = seed("tests.retention.overridden", 1, count=2, now=now)
    # Running for 100 days, and one RUNNING with an old end time (as a row could be mid-redrive).
    running = seed("tests.retention.gone", None, count=2, now=now) + seed("tests.retention.weekly", None, now=now)
    stale = seed("tests.retention.weekly", 60, now=now, status=ExecutionStatus.RUNNING)
    # Expired, but the product still needs them.
    held = [old_default[0], old_weekly[1]]
    HELD.update(held)

    report = retention.purge(now=now)

    expired = [pk for pk in old_default + old_weekly + old_overridden if pk not in held]
    kept = young_default + young_weekly + young_overridden + running + stale + held
    assert journal_rows(expired) == (0, 0, 0)
    assert journal_rows(kept) == (len(kept), 3 * len(kept), 2 * len(kept))
    assert Execution.objects.count() == len(kept)
    assert (report.executions, report.operations, report.events, report.held) == (
        len(expired),
        3 * len(expired),
        2 * len(expired),
        2,
    )
    assert {name: (f.retention_days, f.executions, f.held) for name, f in report.functions.items()} == {
        "tests.retention.gone": (30, 3, 1),
        "tests.retention.weekly": (7, 3, 1),
        "tests.retention.overridden": (2, 2, 0),
    }
    assert not report.more
    # The hook was asked about every expired candidate, and about nothing else.
    assert sorted(pk for call in HOLD_CALLS for pk in call) == sorted(old_default + old_weekly + old_overridden)
    # Nothing more to do: a second purge deletes nothing and asks only about the held ones.
    again = retention.purge(now=now)
    assert (again.executions, again.held, again.batches) == (0, 2, 0)


def test_batches_are_transactions_of_at_most_batch_size_executions(hooked):
    now = clock.now()
    ids = seed("tests.retention.weekly", 10, count=7, now=now)
    delete = f"DELETE FROM {connection.ops.quote_name(Execution._meta.db_table)}"
    with CaptureQueriesContext(connection) as captured:
        report = retention.purge(batch_size=2, now=now)
    assert report.batches == 4
    deletes = [q["sql"] for q in captured.captured_queries if q["sql"].startswith(delete)]
    assert len(deletes) == 4
    assert journal_rows(ids) == (0, 0, 0)
    assert report.longest_batch_seconds > 0


def test_a_bounded_purge_stops_at_max_batches_and_says_more_remain(hooked):
    now = clock.now()
    ids = seed("tests.retention.weekly", 10, count=7, now=now)
    first = retention.purge(batch_size=2, max_batches=2, now=now)
    assert (first.executions, first.batches, first.more) == (4, 2, True)
    assert journal_rows(ids)[0] == 3
    # The oldest went first.
    assert set(Execution.objects.values_list("ended_at", flat=True)) == {
        now - timedelta(days=10, seconds=i) for i in range(3)
    }
    second = retention.purge(batch_size=2, max_batches=2, now=now)
    assert (second.executions, second.more) == (3, False)


def test_one_function_only_and_a_dry_run_deletes_nothing(hooked):
    now = clock.now()
    weekly_ids = seed("tests.retention.weekly", 10, count=3, now=now)
    other = seed("tests.retention.gone", 40, count=2, now=now)
    dry = retention.purge(dry_run=True, now=now)
    assert (dry.dry_run, dry.executions, dry.operations, dry.events) == (True, 5, 15, 10)
    assert journal_rows(weekly_ids + other) == (5, 15, 10)
    only = retention.purge(function_name="tests.retention.weekly", now=now)
    assert only.executions == 3
    assert journal_rows(weekly_ids) == (0, 0, 0)
    assert journal_rows(other) == (2, 6, 4)


def test_a_failing_hook_deletes_nothing(settings):
    now = clock.now()
    ids = seed("tests.retention.weekly", 10, count=2, now=now)
    settings.DURABLE = {**settings.DURABLE, "RETENTION_HOLD": f"{__name__}.broken_hold"}
    with pytest.raises(RuntimeError, match="product database away"):
        retention.purge(now=now)
    assert journal_rows(ids) == (2, 6, 4)


def broken_hold(execution_ids: list[str]) -> set[str]:
    raise RuntimeError("product database away")


@pytest.mark.parametrize("value", [0, 91, -1, "30", 30.0, 1.5, True, Duration(36 * 3600), Duration(0)])
def test_retention_periods_out_of_range_or_not_whole_days_are_refused(value):
    with pytest.raises(ValidationError, match="retention period"):
        validate_retention(value)
    with pytest.raises(ValidationError, match="retention period"):
        durable_execution(name="tests.retention.refused", retention_period=value)(lambda event, context: None)


@pytest.mark.parametrize(
    ("value", "days"), [(1, 1), (90, 90), (Duration.from_days(1), 1), (Duration.from_days(90), 90)]
)
def test_retention_periods_of_1_to_90_days_are_accepted(value, days):
    fn = durable_execution(name="tests.retention.accepted", retention_period=value)(lambda event, context: None)
    assert fn.retention_period == Duration.from_days(days)
    assert retention.retention_days("tests.retention.accepted") == days


@pytest.mark.parametrize(
    ("durable", "message"),
    [
        ({"RETENTION_DAYS": 0}, "RETENTION_DAYS"),
        ({"RETENTION_DAYS": 91}, "RETENTION_DAYS"),
        ({"RETENTION_DAYS": "30"}, "RETENTION_DAYS"),
        ({"RETENTION_BY_FUNCTION": {"a": 91}}, "RETENTION_BY_FUNCTION"),
        ({"RETENTION_BY_FUNCTION": [("a", 3)]}, "RETENTION_BY_FUNCTION"),
        ({"PURGE_INTERVAL": -1}, "PURGE_INTERVAL"),
        ({"PURGE_BATCH_SIZE": 0}, "batch size"),
        ({"RETENTION_HOLD": "tests.durable.no_such_module.hold"}, "RETENTION_HOLD"),
    ],
)
def test_retention_settings_out_of_range_are_refused(settings, durable, message):
    settings.DURABLE = {**settings.DURABLE, **durable}
    with pytest.raises(ImproperlyConfigured, match=message):
        retention.check_settings()


def test_the_defaults_pass_the_check_and_give_30_days():
    retention.check_settings()
    assert retention.retention_days("tests.retention.unknown") == 30


@pytest.mark.parametrize(("variable", "value"), [("DURABLE_RETENTION_DAYS", "91"), ("DURABLE_RETENTION_DAYS", "x")])
def test_a_bad_retention_variable_stops_the_project_at_start_up(variable, value):
    env = {**os.environ, variable: value, "DJANGO_SETTINGS_MODULE": "tests.durable.settings"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "RETENTION_DAYS" in result.stderr


# Invoked executions: a purge of one side leaves the other working.


@durable_execution(name="tests.retention.child", retention_period=1)
def child(event: dict, context: DurableContext) -> str:
    return context.wait_for_callback(lambda callback_id, _: None, name="approval")


@durable_execution(name="tests.retention.parent", retention_period=1, execution_timeout=60)
def parent(event: dict, context: DurableContext) -> dict:
    try:
        return {"child": context.invoke("tests.retention.child", {}, name="call", config=InvokeConfig())}
    except InvokeError as exc:
        return {"error": str(exc)}


def test_purging_a_parent_leaves_its_running_child_able_to_finish():
    with DurableTestRunner(parent) as runner:
        parent_id = runner.run_async("{}")
        runner.step_once(parent_id)
        kid = Execution.objects.get(parent_execution_id=parent_id)
        callback_id = runner.wait_for_callback(str(kid.pk), name="approval")
        # The parent times out (60 s); its child goes on waiting for its callback.
        runner.clock.advance_to(runner.clock.current + timedelta(seconds=61))
        runner.step_once(parent_id)
        assert client.get_execution(parent_id).status == ExecutionStatus.TIMED_OUT
        report = retention.purge(now=runner.clock.current + timedelta(days=2))
        assert report.executions == 1
        assert journal_rows([parent_id]) == (0, 0, 0)
        kid.refresh_from_db()
        assert (kid.status, kid.parent_execution_id) == (ExecutionStatus.RUNNING, None)
        runner.send_callback_success(callback_id, "yes")
        result = runner.wait_for_result(str(kid.pk))
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == "yes"


def test_purging_a_child_leaves_its_parent_and_the_parents_journal():
    with DurableTestRunner(parent) as runner:
        parent_id = runner.run_async("{}")
        runner.step_once(parent_id)
        kid = Execution.objects.get(parent_execution_id=parent_id)
        runner.send_callback_success(runner.wait_for_callback(str(kid.pk), name="approval"), json.dumps("ok"))
        assert runner.wait_for_result(parent_id).status == "SUCCEEDED"
        parent_rows = journal_rows([parent_id])
        # The child ended a day before its parent: only it is past its day of retention.
        Execution.objects.filter(pk=kid.pk).update(ended_at=runner.clock.current - timedelta(days=1))
        report = retention.purge(now=runner.clock.current + timedelta(hours=12))
    assert report.executions == 1
    assert journal_rows([str(kid.pk)]) == (0, 0, 0)
    assert journal_rows([parent_id]) == parent_rows
    call = Operation.objects.get(execution_id=parent_id, name="call")
    assert (call.status, call.child_execution_id) == ("SUCCEEDED", None)
    assert [e["EventType"] for e in client.get_history(parent_id)["Events"]][-1] == "ExecutionSucceeded"


@pytest.mark.parametrize("cursor", [False, True])
def test_the_purge_reads_candidates_by_its_index(cursor):
    now = clock.now()
    # A backlog: the index must give the oldest first, not every expired row to sort.
    for n in range(4):
        seed(f"tests.retention.index{n}", 40, count=2000, operations=0, events=0, now=now)
        seed(f"tests.retention.index{n}", 5, count=300, operations=0, events=0, now=now)
        seed(f"tests.retention.index{n}", None, count=300, operations=0, events=0, now=now)
    with connection.cursor() as db:
        db.execute("ANALYZE")
    after = (now - timedelta(days=40, seconds=1000), uuid.UUID(int=0)) if cursor else None
    query = purge_store.expired_query("tests.retention.index1", now - timedelta(days=30), after)
    plan = query.values_list("pk", "ended_at")[:200].explain()
    if connection.vendor == "sqlite":
        assert "USING INDEX durable_exec_ended" in plan, plan
        assert "SCAN durable_execution" not in plan, plan
    else:
        assert "Index Scan using durable_exec_ended on durable_execution" in plan, plan
        assert "Seq Scan" not in plan, plan
        assert "Bitmap" not in plan, plan


def test_a_bounded_run_reads_a_bounded_number_of_held_pages(hooked):
    now = clock.now()
    held = seed("tests.retention.weekly", 20, count=25, operations=0, events=0, now=now)
    expired = seed("tests.retention.weekly", 10, count=1, now=now)
    HELD.update(held)
    first = retention.purge(batch_size=1, max_batches=2, now=now)
    # 2 batches allow 20 pages: all of them held; the expired one after them waits.
    assert (first.pages, first.batches, first.held, first.more) == (20, 0, 20, True)
    assert journal_rows(expired)[0] == 1
    everything = retention.purge(batch_size=1, now=now)
    assert (everything.executions, everything.held, everything.more) == (1, 25, False)
    assert journal_rows(expired + held) == (25, 0, 0)
