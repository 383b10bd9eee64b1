"""The journal in Django admin: pages render for operators, refuse everyone else, and each action
works on a real execution, asks for confirmation, and is recorded in the history."""

import json
import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from durable import DurableContext, RetryDecision, StepConfig, WaitForCallbackConfig, durable_execution
from durable.client import get_history
from durable.config import Duration
from durable.models import Execution, HistoryEvent, Operation
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

OPERATOR_PERMISSIONS = (
    "view_execution",
    "stop_execution",
    "redrive_execution",
    "reenqueue_execution",
    "complete_callback",
)
broken = {"on": True}


@durable_execution(name="tests.admin.waits")
def waits(event: dict, context: DurableContext) -> dict:
    config = WaitForCallbackConfig(timeout=Duration(3600))
    try:
        value = context.wait_for_callback(lambda callback_id, _: None, "approval", config)
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"value": value}


def _no_retry(error: Exception, attempts: int) -> RetryDecision:
    return RetryDecision.no_retry()


def _flaky(_) -> str:
    if broken["on"]:
        raise RuntimeError("bug in transform")
    return "fixed"


@durable_execution(name="tests.admin.nested")
def nested(event: dict, context: DurableContext) -> dict:
    def inner(child: DurableContext) -> str:
        return child.step(lambda _: "inside", name="inner step")

    first = context.run_in_child_context(inner, name="child")
    second = context.step(_flaky, name="transform", config=StepConfig(retry_strategy=_no_retry))
    return {"first": first, "second": second}


def user_with(username, *codenames, staff=True):
    user = get_user_model().objects.create_user(username, is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="durable", codename__in=codenames))
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def operator():
    client = Client()
    client.force_login(user_with("operator", *OPERATOR_PERMISSIONS))
    return client


@pytest.fixture
def runner():
    broken["on"] = True
    with DurableTestRunner(waits) as runner:
        runner.register_durable_function("tests.admin.nested", nested)
        yield runner


def waiting_execution(runner):
    execution_id = runner.run_async(json.dumps({}))
    return execution_id, runner.wait_for_callback(execution_id, name="approval")


def failed_execution(runner):
    result = runner.run(json.dumps({"n": 1}), function_name="tests.admin.nested")
    assert result.status == "FAILED"
    return result.execution_id


def url(execution_id, action="change/"):
    return f"/admin/durable/execution/{execution_id}/{action}"


def operator_actions(execution_id):
    return [e.details for e in HistoryEvent.objects.filter(execution_id=execution_id, event_type="OperatorAction")]


# Pages


def test_the_list_filters_and_searches(operator, runner):
    waiting_id, _ = waiting_execution(runner)
    failed_id = failed_execution(runner)
    page = operator.get("/admin/durable/execution/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/admin/django_rq/dashboard/" in html  # the queues and workers are one click away
    assert str(failed_id) in html
    assert str(waiting_id) in html
    failed_only = operator.get("/admin/durable/execution/", {"status__exact": "FAILED"}).content.decode()
    assert str(failed_id) in failed_only
    assert str(waiting_id) not in failed_only
    by_function = operator.get("/admin/durable/execution/", {"function_name": "tests.admin.waits"}).content.decode()
    assert str(waiting_id) in by_function
    assert str(failed_id) not in by_function
    by_id = operator.get("/admin/durable/execution/", {"q": str(failed_id)}).content.decode()
    assert str(failed_id) in by_id
    assert str(waiting_id) not in by_id
    name = Execution.objects.get(pk=waiting_id).execution_name
    by_name = operator.get("/admin/durable/execution/", {"q": name[-10:]}).content.decode()
    assert str(waiting_id) in by_name
    assert str(failed_id) not in by_name
    today = Execution.objects.get(pk=waiting_id).created_at
    by_date = operator.get(
        "/admin/durable/execution/", {"created_at__year": today.year, "created_at__month": today.month}
    )
    assert by_date.status_code == 200
    assert str(waiting_id) in by_date.content.decode()


def test_the_execution_page_shows_input_error_timeline_and_history(operator, runner):
    execution_id = failed_execution(runner)
    page = operator.get(url(execution_id))
    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(r'id="execution-status">FAILED<', html)
    assert "&quot;n&quot;: 1" in html  # the input, pretty-printed (escaped)
    assert "bug in transform" in html
    assert "Traceback" in html  # the stack trace of the failed step
    rows = re.findall(
        r'class="tl-row timeline-row" data-depth="(\d)".*?<span class="tl-label">(?:↳ )?([^<]+)</span>', html, re.S
    )
    assert [(int(depth), name.strip()) for depth, name in rows] == [(0, "child"), (1, "inner step"), (0, "transform")]
    # Every event, a step's start and end written in one row (`started_at`) shown as both.
    events = get_history(execution_id)["Events"]
    assert len(events) > HistoryEvent.objects.filter(execution_id=execution_id).count()
    shown = re.findall(r'<tr class="history-row">\s*<td>\d+</td><td>([A-Za-z]+)</td>', html)
    assert shown == [e["EventType"] for e in events]
    assert "ExecutionFailed" in html
    assert "Redrive" in html
    assert "Stop</a>" not in html


def test_a_waiting_callback_shows_its_id_and_deadline(operator, runner):
    execution_id, callback_id = waiting_execution(runner)
    html = operator.get(url(execution_id)).content.decode()
    assert callback_id in html
    deadline = Operation.objects.get(callback_id=callback_id).callback_deadline
    assert deadline.strftime("%Y-%m-%d %H:%M:%S") in html
    assert url(execution_id, f"callbacks/{callback_id}/succeed/") in html


def test_unknown_executions_are_404(operator):
    assert operator.get(url(uuid.uuid4())).status_code == 404
    assert operator.get(url(uuid.uuid4(), "stop/")).status_code == 404


# Who may see and act


def test_staff_without_the_engines_permissions_see_nothing_and_change_nothing(runner):
    # A staff user of some other app (a reviewer in this repository's product, say).
    execution_id, callback_id = waiting_execution(runner)
    reviewer = get_user_model().objects.create_user("reviewer", is_staff=True)
    reviewer.user_permissions.add(Permission.objects.get(codename="view_group"))
    client = Client()
    client.force_login(reviewer)
    assert client.get("/admin/durable/execution/").status_code == 403
    assert client.get(url(execution_id)).status_code == 403
    assert client.post(url(execution_id, "stop/"), {"confirm": "yes"}).status_code == 403
    succeed = url(execution_id, f"callbacks/{callback_id}/succeed/")
    assert client.post(succeed, {"confirm": "yes", "result": "x"}).status_code == 403
    assert Execution.objects.get(pk=execution_id).status == "RUNNING"
    assert Operation.objects.get(callback_id=callback_id).status == "STARTED"
    assert "Executions" not in client.get("/admin/").content.decode()


def test_anonymous_and_non_staff_users_are_sent_to_log_in(client, runner):
    execution_id, _ = waiting_execution(runner)
    for who in (None, user_with("plain", *OPERATOR_PERMISSIONS, staff=False)):
        if who:
            client.force_login(who)
        response = client.post(url(execution_id, "stop/"), {"confirm": "yes"})
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]
    assert Execution.objects.get(pk=execution_id).status == "RUNNING"


def test_viewing_is_not_acting(runner):
    execution_id, _ = waiting_execution(runner)
    client = Client()
    client.force_login(user_with("viewer", "view_execution"))
    html = client.get(url(execution_id)).content.decode()
    assert "Stop</a>" not in html
    assert "Complete…" not in html
    assert client.post(url(execution_id, "stop/"), {"confirm": "yes"}).status_code == 403
    assert client.post(url(execution_id, "reenqueue/"), {"confirm": "yes"}).status_code == 403
    assert Execution.objects.get(pk=execution_id).status == "RUNNING"


def test_actions_need_the_csrf_token(runner):
    execution_id, _ = waiting_execution(runner)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_with("operator", *OPERATOR_PERMISSIONS))
    assert client.post(url(execution_id, "stop/"), {"confirm": "yes"}).status_code == 403
    assert Execution.objects.get(pk=execution_id).status == "RUNNING"
    confirm = client.get(url(execution_id, "stop/")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', confirm).group(1)
    response = client.post(url(execution_id, "stop/"), {"confirm": "yes", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Execution.objects.get(pk=execution_id).status == "STOPPED"


# Actions on real executions


def test_stop_asks_then_stops_and_records_who(operator, runner):
    execution_id, _ = waiting_execution(runner)
    confirm = operator.get(url(execution_id, "stop/"))
    assert confirm.status_code == 200
    assert "Stop this execution?" in confirm.content.decode()
    assert Execution.objects.get(pk=execution_id).status == "RUNNING"  # asking changes nothing
    unconfirmed = operator.post(url(execution_id, "stop/"), {"reason": "wrong input"})
    assert unconfirmed.status_code == 200  # no confirm=yes: asked again
    assert Execution.objects.get(pk=execution_id).status == "RUNNING"
    done = operator.post(url(execution_id, "stop/"), {"confirm": "yes", "reason": "wrong input"}, follow=True)
    assert "Done" in done.content.decode()
    execution = Execution.objects.get(pk=execution_id)
    assert execution.status == "STOPPED"
    assert execution.error["ErrorMessage"] == "wrong input"
    assert operator_actions(execution_id) == [{"Action": "stop", "User": "operator", "Reason": "wrong input"}]
    assert HistoryEvent.objects.filter(execution_id=execution_id, event_type="ExecutionStopped").count() == 1
    again = operator.post(url(execution_id, "stop/"), {"confirm": "yes"}, follow=True)
    assert "Nothing was changed" in again.content.decode()
    assert len(operator_actions(execution_id)) == 1


def test_redrive_resumes_a_failed_execution(operator, runner):
    execution_id = failed_execution(runner)
    assert "Redrive this failed execution" in operator.get(url(execution_id, "redrive/")).content.decode()
    broken["on"] = False  # the fix is deployed
    operator.post(url(execution_id, "redrive/"), {"confirm": "yes"})
    assert Execution.objects.get(pk=execution_id).status == "RUNNING"
    assert operator_actions(execution_id) == [{"Action": "redrive", "User": "operator"}]
    result = runner.wait_for_result(str(execution_id))
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == {"first": "inside", "second": "fixed"}
    events = list(HistoryEvent.objects.filter(execution_id=execution_id).values_list("event_type", flat=True))
    assert "ExecutionRedriven" in events


def test_a_callback_is_completed_by_hand(operator, runner):
    execution_id, callback_id = waiting_execution(runner)
    succeed = url(execution_id, f"callbacks/{callback_id}/succeed/")
    assert "Complete callback" in operator.get(succeed).content.decode()
    operator.post(succeed, {"confirm": "yes", "result": "approved by phone"})
    assert Operation.objects.get(callback_id=callback_id).status == "SUCCEEDED"
    assert operator_actions(execution_id) == [
        {"Action": "complete callback", "User": "operator", "CallbackId": callback_id}
    ]
    result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == {"value": "approved by phone"}
    twice = operator.post(succeed, {"confirm": "yes", "result": "again"}, follow=True)
    assert "Nothing was changed" in twice.content.decode()
    assert Operation.objects.get(callback_id=callback_id).result == "approved by phone"


def test_a_callback_is_failed_by_hand(operator, runner):
    execution_id, callback_id = waiting_execution(runner)
    fail = url(execution_id, f"callbacks/{callback_id}/fail/")
    operator.post(fail, {"confirm": "yes", "error_type": "Declined", "message": "no answer by phone"})
    result = runner.wait_for_result(execution_id)
    assert json.loads(result.result)["message"] == "no answer by phone"
    assert operator_actions(execution_id)[0]["Action"] == "fail callback"
    assert operator.post(fail, {"confirm": "yes"}).status_code == 200  # the form needs a message: asked again


def test_a_callback_of_another_execution_is_404(operator, runner):
    _first, callback_id = waiting_execution(runner)
    second, _ = waiting_execution(runner)
    response = operator.post(url(second, f"callbacks/{callback_id}/succeed/"), {"confirm": "yes", "result": "x"})
    assert response.status_code == 404
    assert Operation.objects.get(callback_id=callback_id).status == "STARTED"


def test_reenqueue_puts_a_fresh_job_on_the_queue(
    operator, runner, redis_server, settings, monkeypatch, django_capture_on_commit_callbacks
):
    import django_rq

    execution_id, _ = waiting_execution(runner)
    before = Execution.objects.get(pk=execution_id).wake_at
    runner.close()  # the runner dispatches nothing while it drives; here the admin's dispatch counts
    monkeypatch.setitem(settings.RQ_QUEUES["default"], "URL", redis_server.url)
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "DISPATCHER": "durable.rq.dispatch"}
    redis_server.client().flushall()
    with django_capture_on_commit_callbacks(execute=True):
        operator.post(url(execution_id, "reenqueue/"), {"confirm": "yes"})
    execution = Execution.objects.get(pk=execution_id)
    assert execution.status == "RUNNING"
    assert execution.wake_at < before  # due now instead of at the callback's timeout
    queued = django_rq.get_queue("default").job_ids
    assert len(queued) == 1
    assert queued[0].startswith(f"durable-{execution_id}-")
    assert operator_actions(execution_id) == [{"Action": "reenqueue", "User": "operator"}]
    event = HistoryEvent.objects.get(execution_id=execution_id, event_type="ExecutionReenqueued")
    assert event.details["PreviousWakeAt"]


def test_the_rq_dashboard_is_reachable_from_admin(admin_client, redis_server, settings, monkeypatch):
    monkeypatch.setitem(settings.RQ_QUEUES["default"], "URL", redis_server.url)
    response = admin_client.get("/admin/django_rq/dashboard/")
    assert response.status_code == 200
    assert "default" in response.content.decode()


def test_callback_pages_tell_nobody_without_the_permission_which_callback_ids_exist(runner):
    execution_id, callback_id = waiting_execution(runner)
    client = Client()
    client.force_login(user_with("viewer", "view_execution"))
    for action in ("succeed", "fail"):
        real = client.get(url(execution_id, f"callbacks/{callback_id}/{action}/"))
        made_up = client.get(url(execution_id, f"callbacks/{'x' * 32}/{action}/"))
        assert (real.status_code, made_up.status_code) == (403, 403)
    assert Operation.objects.get(callback_id=callback_id).status == "STARTED"


@durable_execution(name="tests.admin.invoker")
def invoker(event: dict, context: DurableContext) -> None:
    context.invoke("tests.admin.waits", {}, name="delegate")


def test_an_invoked_execution_links_to_its_parent_and_back(operator):
    with DurableTestRunner(invoker) as runner:
        parent_id = runner.run_async()
        assert runner.step_once(parent_id)
    child = Execution.objects.get(parent_execution_id=parent_id)
    parent_html = operator.get(url(parent_id)).content.decode()
    assert url(child.pk) in parent_html
    assert re.search(r'id="execution-children">.*tests\.admin\.waits.*RUNNING', parent_html, re.S)
    child_html = operator.get(url(child.pk)).content.decode()
    assert re.search(rf'id="execution-parent"><a href="{url(parent_id)}">', child_html)
