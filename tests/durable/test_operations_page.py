"""The operations page: staff with the engine's view permission see charts drawn as inline SVG
whose marks carry the numbers of the seeded journal; everyone else is refused."""

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from durable import clock
from durable.dashboard import dashboard
from durable.models import Execution, HistoryEvent, Operation
from tests.durable.test_admin import OPERATOR_PERMISSIONS, user_with

pytestmark = pytest.mark.django_db
PAGE = "/admin/durable/execution/operations/"
NOW = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)


def execution(function: str, status: str, created: datetime, **fields) -> Execution:
    return Execution.objects.create(
        function_name=function,
        execution_name=uuid.uuid4().hex,
        input="{}",
        input_hash="0" * 64,
        status=status,
        created_at=created,
        updated_at=created,
        timeout_seconds=3600,
        timeout_at=created + timedelta(hours=1),
        **fields,
    )


def operation(execution: Execution, kind: str, **fields) -> None:
    Operation.objects.create(
        execution=execution, operation_id=uuid.uuid4().hex, type=kind, sub_type=kind, status="STARTED", **fields
    )


def event(execution: Execution, event_type: str, at: datetime, operation_id: str | None = None) -> None:
    HistoryEvent.objects.create(execution=execution, event_type=event_type, timestamp=at, operation_id=operation_id)


def attempt(execution: Execution, operation_id: str, start: datetime, seconds: float, ok: bool = True) -> None:
    event(execution, "StepStarted", start, operation_id)
    event(execution, "StepSucceeded" if ok else "StepFailed", start + timedelta(seconds=seconds), operation_id)


@pytest.fixture
def seeded():
    """Two hours of executions: 13:xx has 2 SUCCEEDED and 1 FAILED; 14:xx has 4 RUNNING (due,
    on a timer, on a callback, on a worker) and 1 TIMED_OUT; and one from two days ago."""
    h13, h14 = NOW.replace(hour=13, minute=10), NOW.replace(hour=14, minute=5)
    ok1 = execution("billing.charge", "SUCCEEDED", h13)
    ok2 = execution("billing.charge", "SUCCEEDED", h13 + timedelta(minutes=5))
    failed = execution("billing.refund", "FAILED", h13 + timedelta(minutes=7))
    execution("docs.summarize", "RUNNING", h14, wake_at=NOW - timedelta(seconds=5))  # due
    on_timer = execution("docs.summarize", "RUNNING", h14, wake_at=NOW + timedelta(minutes=5))
    on_callback = execution("docs.summarize", "RUNNING", h14, wake_at=NOW + timedelta(days=1))
    lease = {"lease_owner": "w1", "lease_token": "t", "lease_expires_at": NOW + timedelta(seconds=30)}
    execution("docs.summarize", "RUNNING", h14, wake_at=NOW - timedelta(seconds=1), **lease)  # on a worker
    operation(on_timer, "WAIT", wait_until=NOW + timedelta(minutes=5))
    operation(on_callback, "CALLBACK", callback_id=uuid.uuid4().hex)
    timed_out = execution("docs.summarize", "TIMED_OUT", h14 + timedelta(minutes=1))
    old = execution("billing.refund", "FAILED", NOW - timedelta(days=2))
    event(failed, "ExecutionFailed", h13 + timedelta(minutes=8))
    event(timed_out, "ExecutionTimedOut", h14 + timedelta(minutes=20))
    event(old, "ExecutionFailed", NOW - timedelta(days=2))
    # 13:xx step attempts of 1, 2, 3, 4 s (p50 2, p95 4); 14:xx of 10 s (p50 = p95 = 10).
    for i, seconds in enumerate((1, 2, 3, 4)):
        attempt(ok1 if i % 2 else ok2, f"op{i}", h13 + timedelta(minutes=i), seconds, ok=i != 3)
    attempt(timed_out, "op9", h14 + timedelta(minutes=2), 10)
    return h13, h14


def marks(html: str, section: str) -> list[dict[str, str]]:
    block = re.search(rf'<section id="{section}">(.*?)</section>', html, re.S).group(1)
    return [
        dict(re.findall(r'data-(\w+)="([^"]*)"', tag))
        for tag in re.findall(r'<(?:rect|circle) class="mark"[^>]*>', block)
    ]


@pytest.fixture
def staff():
    client = Client()
    client.force_login(user_with("operator", *OPERATOR_PERMISSIONS))
    return client


def test_staff_see_charts_whose_numbers_match_the_journal(staff, seeded):
    _h13, _h14 = seeded
    with clock.use_clock(lambda: NOW):
        page = staff.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<svg class="chart"') == 4
    # No asset from elsewhere (a CDN): every script, style and image is the site's own. (A search
    # for "cdn" in the page failed now and then on random text: a CSRF token, an id.)
    assert not re.findall(r'(?:src|href)\s*=\s*["\']?(?:https?:)?//', html, flags=re.IGNORECASE)
    assert '<script src="http' not in html
    by_status = {(m["bucket"][:13], m["key"]): int(m["value"]) for m in marks(html, "chart-status")}
    assert by_status == {
        ("2026-12-02T13", "SUCCEEDED"): 2,
        ("2026-12-02T13", "FAILED"): 1,
        ("2026-12-02T14", "RUNNING"): 4,
        ("2026-12-02T14", "TIMED_OUT"): 1,
    }
    latency = {(m["bucket"][:13], m["key"]): float(m["value"]) for m in marks(html, "chart-latency")}
    assert latency == {
        ("2026-12-02T13", "p50"): 2.0,
        ("2026-12-02T13", "p95"): 4.0,
        ("2026-12-02T14", "p50"): 10.0,
        ("2026-12-02T14", "p95"): 10.0,
    }
    backlog = {m["key"]: int(m["value"]) for m in marks(html, "chart-backlog")}
    assert backlog == {"due": 1, "on worker": 1, "timer": 1, "callback": 1, "retry": 0, "invoke": 0}
    failures = [(m["key"], int(m["value"])) for m in marks(html, "chart-failures")]
    assert failures == [("billing.refund", 1), ("docs.summarize", 1)]  # not the one from two days ago


def test_a_longer_window_counts_by_day(staff, seeded):
    with clock.use_clock(lambda: NOW):
        html = staff.get(PAGE, {"window": "7d"}).content.decode()
        numbers = dashboard("7d", NOW)
    failures = {m["key"]: int(m["value"]) for m in marks(html, "chart-failures")}
    assert failures == {"billing.refund": 2, "docs.summarize": 1}
    by_day = {(m["bucket"][:10], m["key"]): int(m["value"]) for m in marks(html, "chart-status")}
    assert by_day[("2026-11-30", "FAILED")] == 1
    assert by_day[("2026-12-02", "RUNNING")] == 4
    assert len(numbers.buckets) == 7
    assert numbers.buckets[-1] == datetime(2026, 12, 2, tzinfo=UTC)


def test_the_page_is_refused_to_everyone_else(client, seeded):
    assert client.get(PAGE).status_code == 302  # anonymous: to the login page
    client.force_login(user_with("visitor", staff=False))
    assert client.get(PAGE).status_code == 302
    staff_without = Client()
    staff_without.force_login(user_with("clerk"))  # staff, without the engine's permissions
    assert staff_without.get(PAGE).status_code == 403


def test_the_list_links_to_the_operations_page(staff):
    assert PAGE in staff.get("/admin/durable/execution/").content.decode()
