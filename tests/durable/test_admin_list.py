"""The executions list tells what each running execution waits for (a timer, a callback, a retry,
an invoked execution, a worker), its next wake-up, its label and whether it needs attention; the
page costs the same number of queries for 3 rows as for 30."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from durable import DurableContext, Duration, RetryDecision, StepConfig, durable_execution
from durable.client import set_execution_attention, start_execution
from durable.config import JitterStrategy
from durable.exceptions import ValidationError
from durable.listing import WaitKind, filter_executions, waiting_for
from durable.models import Execution
from durable.retries import RetryStrategyConfig, create_retry_strategy
from durable.testing import DurableTestRunner
from tests.durable.test_admin import OPERATOR_PERMISSIONS, user_with
from tests.durable.test_shell_commands import refused, run, run_json

pytestmark = pytest.mark.django_db
LIST = "/admin/durable/execution/"


@durable_execution(name="tests.list.timer")
def timer(event: dict, context: DurableContext) -> None:
    context.wait(Duration(3600), name="cool off")


@durable_execution(name="tests.list.callback")
def callback(event: dict, context: DurableContext) -> None:
    context.create_callback(name="approval").result()


def _retry_later(error: Exception, attempts: int) -> RetryDecision:
    return RetryDecision.retry(Duration(600)) if attempts < 4 else RetryDecision.no_retry()


def _always_fails(_) -> None:
    raise RuntimeError("the provider is down")


@durable_execution(name="tests.list.retry")
def retry(event: dict, context: DurableContext) -> None:
    context.step(_always_fails, name="call provider", config=StepConfig(retry_strategy=_retry_later))


@durable_execution(name="tests.list.retry_of")
def retry_of(event: dict, context: DurableContext) -> None:
    """A strategy built by the SDK's factory says how many attempts it allows: "retry 1 of 3"."""
    strategy = create_retry_strategy(
        RetryStrategyConfig(max_attempts=4, initial_delay=Duration(600), jitter_strategy=JitterStrategy.NONE)
    )
    context.step(_always_fails, name="call provider", config=StepConfig(retry_strategy=strategy))


@durable_execution(name="tests.list.invoker")
def invoker(event: dict, context: DurableContext) -> None:
    context.invoke("tests.list.callback", {}, name="delegate")


@pytest.fixture
def operator():
    client = Client()
    client.force_login(user_with("operator", *OPERATOR_PERMISSIONS))
    return client


def started(runner: DurableTestRunner, function: str, **kwargs) -> Execution:
    execution = start_execution(function, {}, **kwargs)
    assert runner.step_once(str(execution.pk))
    return Execution.objects.get(pk=execution.pk)


@pytest.fixture
def waiting():
    """One RUNNING execution waiting for each kind of thing, and one on a worker."""
    with DurableTestRunner(timer) as runner:
        for fn in (callback, retry, retry_of, invoker):
            runner.register_durable_function(fn.name, fn)
        found = {
            "timer": started(runner, "tests.list.timer", label="Quarterly report"),
            "callback": started(runner, "tests.list.callback", label="Contract for ACME"),
            "retry": started(runner, "tests.list.retry"),
            "retry_of": started(runner, "tests.list.retry_of"),
            "invoke": started(runner, "tests.list.invoker"),
        }
        on_worker = start_execution("tests.list.timer", {}, label="on a worker")
        now = runner.clock()
        Execution.objects.filter(pk=on_worker.pk).update(
            lease_owner="worker-7@host", lease_token="t", lease_expires_at=now + timedelta(seconds=60)
        )
        found["running"] = Execution.objects.get(pk=on_worker.pk)
        yield runner, found


def row_of(html: str, execution: Execution) -> str:
    rows = re.findall(r"<tr>.*?</tr>", html, re.S)
    return next(row for row in rows if f"/{execution.pk}/change/" in row)


def test_the_list_says_what_each_running_execution_waits_for(operator, waiting):
    _runner, found = waiting
    html = operator.get(LIST).content.decode()
    # Each wait: a short line, and the whole of it in its title.
    timer_row = row_of(html, found["timer"])
    until = found["timer"].created_at + timedelta(seconds=3600)
    assert (
        f'class="wait wait-timer" title="timer &#x27;cool off&#x27; until {until.isoformat(timespec="seconds")}">'
        f"timer &#x27;cool off&#x27; until {until:%m-%d %H:%M:%S}</div>"
    ) in timer_row
    assert "Quarterly report" in timer_row
    assert f"next wake-up {found['timer'].wake_at:%Y-%m-%d %H:%M:%S}" in timer_row
    callback_row = row_of(html, found["callback"])
    assert re.search(r'wait-callback" title="callback &#x27;approval&#x27; \S+ since \S+', callback_row)
    assert re.search(r">callback &#x27;approval&#x27; since \d\d-\d\d \d\d:\d\d:\d\d</div>", callback_row)
    retry_row = row_of(html, found["retry"])
    retry_at = found["retry"].wake_at
    assert (
        f'title="retry 1 &#x27;call provider&#x27; (attempt 2) at {retry_at.isoformat(timespec="seconds")}">'
        f"retry 1 &#x27;call provider&#x27; at {retry_at:%m-%d %H:%M:%S}</div>"
    ) in retry_row
    # A strategy of the user's own does not say how many attempts it allows; one of the SDK's does.
    retry_of_row = row_of(html, found["retry_of"])
    retry_at = found["retry_of"].wake_at
    assert (
        f'title="retry 1 of 3 &#x27;call provider&#x27; (attempt 2) at {retry_at.isoformat(timespec="seconds")}">'
        f"retry 1 of 3 &#x27;call provider&#x27; at {retry_at:%m-%d %H:%M:%S}</div>"
    ) in retry_of_row
    invoke_row = row_of(html, found["invoke"])
    child = Execution.objects.get(parent_execution=found["invoke"])
    assert f'title="invoke &#x27;delegate&#x27; of child {child.pk}">' in invoke_row
    running_row = row_of(html, found["running"])
    assert ">running on worker worker-7@host</div>" in running_row


@pytest.mark.parametrize("kind", [k for k, _ in WaitKind.CHOICES])
def test_the_list_filters_by_what_executions_wait_for(operator, waiting, kind):
    _runner, found = waiting
    html = operator.get(LIST, {"waiting": kind}).content.decode()
    for other, execution in found.items():
        assert (f"/{execution.pk}/change/" in html) == (other.removesuffix("_of") == kind), (kind, other)
    listed = {e.pk for e in filter_executions(waiting=kind)}
    assert listed & {e.pk for e in found.values()} == {e.pk for k, e in found.items() if k.removesuffix("_of") == kind}


def test_the_list_shows_labels_and_filters_and_searches_by_them(operator, waiting):
    _runner, found = waiting
    by_label = operator.get(LIST, {"label": "acme"}).content.decode()
    assert f"/{found['callback'].pk}/change/" in by_label
    assert f"/{found['timer'].pk}/change/" not in by_label
    searched = operator.get(LIST, {"q": "quarterly"}).content.decode()
    assert f"/{found['timer'].pk}/change/" in searched
    assert f"/{found['callback'].pk}/change/" not in searched
    assert [e.pk for e in filter_executions(label="ACME")] == [found["callback"].pk]


def test_an_execution_needing_attention_is_marked_in_the_list_and_on_its_page(operator, waiting):
    _runner, found = waiting
    set_execution_attention(found["timer"].pk, "webhook not delivered")
    html = operator.get(LIST).content.decode()
    assert 'class="attention"' in row_of(html, found["timer"])
    assert "⚠ webhook not delivered" in row_of(html, found["timer"])
    assert 'class="attention"' not in row_of(html, found["callback"])
    flagged = operator.get(LIST, {"attention": "yes"}).content.decode()
    assert f"/{found['timer'].pk}/change/" in flagged
    assert f"/{found['callback'].pk}/change/" not in flagged
    page = operator.get(f"{LIST}{found['timer'].pk}/change/").content.decode()
    assert re.search(r'id="execution-attention" class="attention">⚠ webhook not delivered<', page)
    set_execution_attention(found["timer"].pk, "")
    assert 'class="attention"' not in row_of(operator.get(LIST).content.decode(), found["timer"])


def test_the_lists_queries_do_not_grow_with_its_rows(operator):
    with DurableTestRunner(timer) as runner:
        runner.register_durable_function(callback.name, callback)

        def page_queries() -> int:
            with CaptureQueriesContext(connection) as queries:
                assert operator.get(LIST).status_code == 200
            return len(queries)

        for _ in range(3):
            started(runner, "tests.list.callback", label="few")
        few = page_queries()
        for _ in range(27):
            started(runner, "tests.list.callback", label="many")
        many = page_queries()
    assert Execution.objects.count() == 30
    assert many == few, (few, many)
    assert few <= 12, few


def test_labels_are_checked_where_they_enter():
    with DurableTestRunner(timer):
        first = start_execution("tests.list.timer", {"n": 1}, execution_name="same", label="  Two\nlines  ")
        assert first.label == "Two lines"
        # An idempotent start returns the execution as it is, label and all.
        again = start_execution("tests.list.timer", {"n": 1}, execution_name="same", label="other")
        assert (again.pk, again.label) == (first.pk, "Two lines")
        with pytest.raises(ValidationError, match="longer than 200"):
            start_execution("tests.list.timer", {}, label="x" * 201)
        with pytest.raises(ValidationError, match="NUL"):
            start_execution("tests.list.timer", {}, label="a\x00b")
        with pytest.raises(ValidationError, match="longer than 200"):
            set_execution_attention(first.pk, "y" * 201)
        assert Execution.objects.get(pk=first.pk).attention == ""


def test_waiting_for_as_text_for_the_shell(waiting):
    _runner, found = waiting
    texts = waiting_for([e.pk for e in found.values()])
    assert texts[str(found["timer"].pk)][0].startswith("timer 'cool off' until ")
    assert texts[str(found["running"].pk)] == [
        f"running on worker worker-7@host until {found['running'].lease_expires_at.isoformat(timespec='seconds')}"
    ]


def test_the_shell_lists_and_shows_labels_attention_and_waits(waiting):
    _runner, found = waiting
    set_execution_attention(found["timer"].pk, "webhook not delivered")
    table = run("durable_executions", "list", "--label", "quarterly")
    assert table.splitlines()[0].split()[:8] == [
        "ID",
        "FUNCTION",
        "NAME",
        "STATUS",
        "STARTED",
        "ENDED",
        "LABEL",
        "WAITING",
    ]
    (row,) = table.splitlines()[1:]
    assert str(found["timer"].pk) in row
    assert "RUNNING ⚠ webhook not delivered" in row
    assert "Quarterly report" in row
    assert "timer 'cool off' until" in row
    on_callbacks = run_json("durable_executions", "list", "--waiting", "callback")["Executions"]
    ids = {e["ExecutionId"] for e in on_callbacks}
    assert str(found["callback"].pk) in ids
    assert str(found["timer"].pk) not in ids
    shown = run("durable_executions", "show", str(found["timer"].pk))
    assert "Label       Quarterly report" in shown
    assert "Attention   ⚠ webhook not delivered" in shown
    as_json = run_json("durable_executions", "show", str(found["timer"].pk))
    assert (as_json["Label"], as_json["Attention"]) == ("Quarterly report", "webhook not delivered")
    code, message = refused("durable_executions", "list", "--waiting", "nothing")
    assert code == 2
    assert "waiting must be one of timer, callback, retry, invoke, running" in message


def test_the_label_box_keeps_the_other_filters(operator, waiting):
    html = operator.get(LIST, {"status__exact": "RUNNING", "label": "acme"}).content.decode()
    form = re.search(r'<form method="get" class="label-filter".*?</form>', html, re.S).group(0)
    assert '<input type="hidden" name="status__exact" value="RUNNING">' in form
    assert 'name="label" value="acme"' in form
    assert 'type="hidden" name="label"' not in form
