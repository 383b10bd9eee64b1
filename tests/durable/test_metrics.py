"""`/metrics` after real runs in this process (invocations driven by hand, on a fake clock), its
protection, the label bound and the sink counter. The real-process tests are in
test_metrics_workers.py."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User

from durable import DurableContext, durable_execution, metrics
from durable.client import send_callback_success, start_execution
from durable.clock import FakeClock, use_clock
from durable.models import Execution, Operation
from durable.rq.dispatch import enqueue_wake_ups
from durable.rq.jobs import queue, timers_key
from durable.runtime import run_invocation
from tests import workflows
from tests.durable.metrics_helpers import TOKEN, scrape

pytestmark = pytest.mark.django_db

FLAKY = "tests.workflows.flaky_then_waits"
APPROVAL = "tests.workflows.approval"


@pytest.fixture(autouse=True)
def label_room(monkeypatch):
    """Each test starts with the labels' bounds empty: the names an earlier test used (one uses
    hundreds of step names) do not turn this test's into "other"."""
    for label in (metrics.function_label, metrics.step_label, metrics.sink_label):
        monkeypatch.setattr(label, "seen", set())
    for children in [value for value in vars(metrics).values() if isinstance(value, metrics.Children)]:
        monkeypatch.setattr(children, "cache", {})


def invoke(execution_id, capture) -> None:
    with capture(execute=True):  # the status signal is sent after commit
        run_invocation(str(execution_id))


def test_a_run_is_counted_from_start_to_end(client, settings, django_capture_on_commit_callbacks):
    clock = FakeClock()
    with use_clock(clock):
        before = scrape(client, settings)
        execution = start_execution(workflows.flaky_then_waits, {"seconds": 5})
        invoke(execution.pk, django_capture_on_commit_callbacks)  # the first attempt fails: retry in 1 s

        waiting = scrape(client, settings)
        assert waiting["durable_executions_started_total", {"function": FLAKY}] == (
            before["durable_executions_started_total", {"function": FLAKY}] + 1
        )
        assert waiting["durable_step_retries_total", {"step": "flaky"}] == (
            before["durable_step_retries_total", {"step": "flaky"}] + 1
        )
        assert waiting["durable_executions_running"] == 1
        assert waiting["durable_executions_waiting", {"waiting_for": "retry"}] == 1
        assert waiting["durable_executions_waiting", {"waiting_for": "timer"}] == 0
        assert waiting["durable_due_backlog"] == 0

        # The retry runs 1.5 s after it was due: a retry's lateness of 1.5 s.
        clock.advance_to(Execution.objects.get(pk=execution.pk).wake_at + timedelta(seconds=1.5))
        assert scrape(client, settings)["durable_due_backlog"] == 1
        assert scrape(client, settings)["durable_due_backlog_age_seconds"] == pytest.approx(1.5)
        invoke(execution.pk, django_capture_on_commit_callbacks)  # the step succeeds; the wait begins

        pausing = scrape(client, settings)
        assert pausing["durable_executions_waiting", {"waiting_for": "timer"}] == 1
        assert pausing["durable_executions_waiting", {"waiting_for": "retry"}] == 0
        assert pausing["durable_step_duration_seconds_count", {"step": "flaky"}] == (
            before["durable_step_duration_seconds_count", {"step": "flaky"}] + 2  # both attempts
        )
        retry_late = ("durable_timer_lateness_seconds_sum", {"kind": "retry"})
        assert pausing[retry_late] - before[retry_late] == pytest.approx(1.5)

        # The wait's wake-up runs 2 s late.
        clock.advance_to(Execution.objects.get(pk=execution.pk).wake_at + timedelta(seconds=2))
        invoke(execution.pk, django_capture_on_commit_callbacks)

        after = scrape(client, settings)
    assert Execution.objects.get(pk=execution.pk).status == "SUCCEEDED"
    ended = ("durable_executions_ended_total", {"function": FLAKY, "status": "SUCCEEDED"})
    assert after[ended] == before[ended] + 1
    timer = ("durable_timer_lateness_seconds_count", {"kind": "wait"})
    assert after[timer] == before[timer] + 1
    timer_sum = ("durable_timer_lateness_seconds_sum", {"kind": "wait"})
    assert after[timer_sum] - before[timer_sum] == pytest.approx(2.0)
    invocations = ("durable_invocations_total", {"function": FLAKY, "outcome": "RUNNING"})
    assert after[invocations] == before[invocations] + 2  # two suspended
    succeeded = ("durable_invocations_total", {"function": FLAKY, "outcome": "SUCCEEDED"})
    assert after[succeeded] == before[succeeded] + 1
    durations = ("durable_invocation_duration_seconds_count", {"function": FLAKY})
    assert after[durations] == before[durations] + 3
    assert after["durable_executions_running"] == 0
    assert after["durable_due_backlog"] == 0
    assert str(execution.pk) not in after.text  # never a label


def test_a_waiting_callback_is_counted_and_its_resumption_timed(client, settings, django_capture_on_commit_callbacks):
    clock = FakeClock()
    with use_clock(clock):
        before = scrape(client, settings)
        execution = start_execution(workflows.approval, {})
        invoke(execution.pk, django_capture_on_commit_callbacks)
        waiting = scrape(client, settings)
        assert waiting["durable_callbacks_waiting"] == 1
        assert waiting["durable_executions_waiting", {"waiting_for": "callback"}] == 1

        callback_id = Operation.objects.get(execution_id=execution.pk, type="CALLBACK").callback_id
        send_callback_success(callback_id, "yes")
        assert scrape(client, settings)["durable_callbacks_waiting"] == 0
        assert scrape(client, settings)["durable_due_backlog"] == 1
        clock.advance_to(clock.current + timedelta(seconds=3))
        invoke(execution.pk, django_capture_on_commit_callbacks)
        after = scrape(client, settings)
    assert after["durable_callback_resume_seconds_count"] == before["durable_callback_resume_seconds_count"] + 1
    resumed = after["durable_callback_resume_seconds_sum"] - before["durable_callback_resume_seconds_sum"]
    assert resumed == pytest.approx(3.0)
    ended = ("durable_executions_ended_total", {"function": APPROVAL, "status": "SUCCEEDED"})
    assert after[ended] == before[ended] + 1


def test_queue_depth_and_timers_come_from_redis(client, settings, redis_server):
    settings.RQ_QUEUES["default"]["URL"] = redis_server.url
    redis_server.client().flushall()
    enqueue_wake_ups([(f"{'a' * 35}{i}", f"durable-{'a' * 35}{i}-1") for i in range(3)])
    q = queue()
    q.connection.zadd(timers_key(q.name), {"durable-later-1": 2e9})
    found = scrape(client, settings)
    assert found["durable_queue_depth", {"queue": "default"}] == 3
    assert found["durable_timers_scheduled", {"queue": "default"}] == 1
    assert found["durable_scrape_source_up", {"source": "redis"}] == 1
    assert found["durable_scrape_source_up", {"source": "database"}] == 1


def test_a_redis_that_does_not_answer_leaves_out_its_gauges_only(client, settings):
    from tests.processes import free_port

    settings.RQ_QUEUES = {"default": {"URL": f"redis://127.0.0.1:{free_port()}/0"}}  # nobody listens
    found = scrape(client, settings)
    assert found["durable_scrape_source_up", {"source": "redis"}] == 0
    assert "durable_queue_depth" not in found.text
    assert found["durable_scrape_source_up", {"source": "database"}] == 1


def test_metrics_need_a_token_or_a_staff_login(client, settings):
    settings.DURABLE = {**settings.DURABLE, "METRICS_TOKEN": TOKEN}
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Bearer"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    allowed = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code == 200
    assert b"durable_executions_running" in allowed.content
    assert "no-cache" in allowed["Cache-Control"]
    assert "no-store" in allowed["Cache-Control"]
    assert client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405

    client.force_login(User.objects.create_user("someone", password="x"))
    assert client.get("/metrics").status_code == 403
    client.force_login(User.objects.create_user("operator", password="x", is_staff=True))
    assert client.get("/metrics").status_code == 200


def test_without_a_token_configured_no_bearer_is_accepted(client, settings):
    settings.DURABLE = {**settings.DURABLE, "METRICS_TOKEN": None}
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 401


def test_step_names_are_bounded_in_the_labels(client, settings):
    label = metrics.BoundedLabel(limit=3)
    assert [label(n) for n in ("a", "b", "a", "c", "d", "e", None, "")] == [
        "a",
        "b",
        "a",
        "c",
        metrics.OTHER,
        metrics.OTHER,
        metrics.UNNAMED,
        metrics.UNNAMED,
    ]
    assert label("x" * 500) == metrics.OTHER
    assert metrics.BoundedLabel()("y" * 500) == "y" * metrics.MAX_LABEL_LENGTH

    for i in range(3 * metrics.MAX_LABEL_VALUES):  # user strings: a step per document, say
        metrics.step_ran(f"summarize document {i}", 0.01)
        metrics.step_retry(f"summarize document {i}")
    found = scrape(client, settings)
    for name in ("durable_step_duration_seconds_count", "durable_step_retries_total"):
        steps = found.label_values(name, "step")
        # (Names earlier tests in this process used are exported too: this test's are counted.)
        assert len([s for s in steps if s.startswith("summarize document ")]) == metrics.MAX_LABEL_VALUES
        assert metrics.OTHER in steps
    assert found["durable_step_retries_total", {"step": metrics.OTHER}] >= 2 * metrics.MAX_LABEL_VALUES


def test_sink_deliveries_and_failures_are_counted(client, settings):
    before = scrape(client, settings)
    metrics.sink_delivery("webhook", True)
    metrics.sink_delivery("webhook", False)
    metrics.sink_delivery("eventbridge", True)
    after = scrape(client, settings)
    for sink, tried, failed in (("webhook", 2, 1), ("eventbridge", 1, 0)):
        labels = {"sink": sink}
        assert after["durable_sink_deliveries_total", labels] - before["durable_sink_deliveries_total", labels] == tried
        failures = after["durable_sink_delivery_failures_total", labels]
        assert failures - before["durable_sink_delivery_failures_total", labels] == failed


@durable_execution(name="tests.metrics.loses_its_lease")
def loses_its_lease(event: dict, context: DurableContext) -> int:
    # Another invocation takes the lease while this one runs a step.
    context.step(lambda _: Execution.objects.filter(status="RUNNING").update(lease_token="taken"), name="taken")
    return context.step(lambda _: 1, name="after")


def test_a_lost_lease_is_counted(client, settings):
    before = scrape(client, settings)
    execution = start_execution(loses_its_lease, {})
    outcome = run_invocation(str(execution.pk))
    assert outcome.ran
    assert outcome.status is None  # it stopped writing
    after = scrape(client, settings)
    assert after["durable_lease_losses_total"] == before["durable_lease_losses_total"] + 1
    unrecorded = ("durable_invocations_total", {"function": "tests.metrics.loses_its_lease", "outcome": "unrecorded"})
    assert after[unrecorded] == before[unrecorded] + 1
