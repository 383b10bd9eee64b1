"""The admin's views and actions from a shell: `durable_executions` and `durable_callback` on
real executions, their filters (the admin's own), `--json`, exit codes by kind of error, and the
operator's name recorded in the history exactly as the admin records it."""

import getpass
import io
import json
import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from durable import DurableContext, RetryDecision, StepConfig, WaitForCallbackConfig, durable_execution
from durable.client import get_history
from durable.config import Duration
from durable.models import Execution, HistoryEvent, Operation
from durable.testing import DurableTestRunner
from tests.processes import database_url

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
broken = {"on": True}


@durable_execution(name="tests.shell.waits")
def waits(event: dict, context: DurableContext) -> dict:
    config = WaitForCallbackConfig(timeout=Duration(3600), heartbeat_timeout=Duration(600))
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


@durable_execution(name="tests.shell.nested")
def nested(event: dict, context: DurableContext) -> dict:
    def inner(child: DurableContext) -> str:
        return child.step(lambda _: "inside", name="inner step")

    first = context.run_in_child_context(inner, name="child")
    second = context.step(_flaky, name="transform", config=StepConfig(retry_strategy=_no_retry))
    return {"first": first, "second": second}


@pytest.fixture
def runner():
    broken["on"] = True
    with DurableTestRunner(waits) as runner:
        runner.register_durable_function("tests.shell.nested", nested)
        yield runner


def waiting_execution(runner, name=None):
    execution_id = runner.run_async(json.dumps({}), execution_name=name)
    return execution_id, runner.wait_for_callback(execution_id, name="approval")


def failed_execution(runner):
    result = runner.run(json.dumps({"n": 1}), function_name="tests.shell.nested")
    assert result.status == "FAILED"
    return str(result.execution_id)


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def run_json(*args):
    return json.loads(run(*args, "--json"))


def refused(*args):
    with pytest.raises(CommandError) as caught:
        run(*args)
    return caught.value.returncode, str(caught.value)


def operator_actions(execution_id):
    return [e.details for e in HistoryEvent.objects.filter(execution_id=execution_id, event_type="OperatorAction")]


# Reading


def test_list_filters_as_the_admin_does(runner):
    waiting_id, callback_id = waiting_execution(runner, name="invoice-2026-0042")
    failed_id = failed_execution(runner)
    table = run("durable_executions", "list")
    header = table.splitlines()[0].split()
    assert header[:6] == ["ID", "FUNCTION", "NAME", "STATUS", "STARTED", "ENDED"]
    assert waiting_id in table
    assert failed_id in table
    waiting_row = next(line for line in table.splitlines() if waiting_id in line)
    assert "RUNNING" in waiting_row
    assert callback_id in waiting_row
    assert failed_id in run("durable_executions", "list", "--status", "failed")
    assert waiting_id not in run("durable_executions", "list", "--status", "FAILED")
    by_function = run("durable_executions", "list", "--function", "tests.shell.waits")
    assert waiting_id in by_function
    assert failed_id not in by_function
    by_id = run("durable_executions", "list", "--search", failed_id)
    assert failed_id in by_id
    assert waiting_id not in by_id
    by_name = run("durable_executions", "list", "--search", "INVOICE-2026")
    assert waiting_id in by_name
    assert failed_id not in by_name
    created = Execution.objects.get(pk=waiting_id).created_at
    later = (created + timedelta(days=1)).date().isoformat()
    assert run("durable_executions", "list", "--created-after", later) == "No executions match.\n"
    assert waiting_id in run("durable_executions", "list", "--created-before", later)
    assert len(run("durable_executions", "list", "--limit", "1").splitlines()) == 2
    dashed = run("durable_executions", "list", "--search", "-2026-00")  # a value, not an option
    assert waiting_id in dashed
    assert failed_id not in dashed


def test_list_as_json_has_stable_keys_and_iso_times(runner):
    waiting_id, callback_id = waiting_execution(runner)
    runner.clock.advance_to(runner.clock() + timedelta(seconds=1))
    failed_id = failed_execution(runner)
    listed = run_json("durable_executions", "list")["Executions"]
    assert [row["ExecutionId"] for row in listed] == [failed_id, waiting_id]  # newest first
    assert set(listed[0]) == {
        "ExecutionId",
        "FunctionName",
        "ExecutionName",
        "Status",
        "Label",
        "Attention",
        "StartTimestamp",
        "EndTimestamp",
        "WaitingFor",
    }
    failed = Execution.objects.get(pk=failed_id)
    assert listed[0]["EndTimestamp"] == failed.ended_at.isoformat()
    assert listed[0]["Status"] == "FAILED"
    assert listed[0]["WaitingFor"] == []
    assert listed[1]["EndTimestamp"] is None
    assert callback_id in listed[1]["WaitingFor"][0]


def test_bad_filters_are_refused_with_exit_code_2(runner):
    waiting_execution(runner)
    code, message = refused("durable_executions", "list", "--status", "DONE")
    assert code == 2
    assert "RUNNING" in message
    code, message = refused("durable_executions", "list", "--created-after", "yesterday")
    assert code == 2
    assert "--created-after" in message
    assert refused("durable_executions", "list", "--created-before", "2026-13-40")[0] == 2
    assert refused("durable_executions", "list", "--limit", "0")[0] == 2
    assert refused("durable_executions", "list", "--limit", "1001")[0] == 2


def test_show_prints_the_execution_its_operations_and_what_it_waits_for(runner):
    execution_id = failed_execution(runner)
    text = run("durable_executions", "show", execution_id)
    assert "FAILED" in text
    assert "bug in transform" in text
    assert '"n": 1' in text
    names = [line.split()[0] for line in text.split("Operations:")[1].splitlines()[2:]]
    assert names == ["child", "inner", "transform"]
    shown = run_json("durable_executions", "show", execution_id)
    assert shown["Status"] == "FAILED"
    assert shown["InputPayload"] == {"n": 1}
    assert shown["Error"]["ErrorMessage"] == "bug in transform"
    assert [(op["Name"], op["Depth"], op["Status"]) for op in shown["Operations"]] == [
        ("child", 0, "SUCCEEDED"),
        ("inner step", 1, "SUCCEEDED"),
        ("transform", 0, "FAILED"),
    ]
    waiting_id, callback_id = waiting_execution(runner)
    waiting = run_json("durable_executions", "show", waiting_id)
    assert waiting["Status"] == "RUNNING"
    assert callback_id in waiting["WaitingFor"][0]
    shown = run("durable_executions", "show", waiting_id)
    assert re.search(rf"Waiting for callback 'approval create callback id' {callback_id} since \S+ until \S+", shown)


def test_unknown_ids_exit_with_3(runner):
    for verb in ("show", "history", "stop", "redrive", "reenqueue"):
        code, message = refused("durable_executions", verb, str(uuid.uuid4()))
        assert code == 3, verb
        assert "no execution" in message
    assert refused("durable_executions", "show", "not-a-uuid")[0] == 3


def test_history_prints_every_event(runner):
    execution_id = failed_execution(runner)
    count = sum(len(row.events()) for row in HistoryEvent.objects.filter(execution_id=execution_id))
    table = run("durable_executions", "history", execution_id).splitlines()
    assert len(table) == count + 1
    assert count > HistoryEvent.objects.filter(execution_id=execution_id).count()  # starts held in ends' rows
    assert "ExecutionStarted" in table[1]
    assert "ExecutionFailed" in table[-1]
    assert any("transform" in line and "StepFailed" in line for line in table)
    as_json = run_json("durable_executions", "history", execution_id)
    assert as_json == json.loads(json.dumps(get_history(execution_id), default=lambda t: t.isoformat()))
    bare = run_json("durable_executions", "history", execution_id, "--no-data")
    assert bare["Events"][0]["ExecutionStartedDetails"]["Input"] == {"Truncated": True}


# Acting


def test_stop_records_the_operator_and_refuses_an_ended_execution(runner):
    execution_id, _ = waiting_execution(runner)
    text = run("durable_executions", "stop", execution_id, "--reason", "wrong input", "--user", "alice")
    assert "STOPPED" in text
    execution = Execution.objects.get(pk=execution_id)
    assert execution.status == "STOPPED"
    assert execution.error["ErrorType"] == "ExecutionStopped"
    assert execution.error["ErrorMessage"] == "wrong input"
    # The admin records {"Action": "stop", "User": <username>, "Reason": <reason>}: the same here.
    assert operator_actions(execution_id) == [{"Action": "stop", "User": "alice", "Reason": "wrong input"}]
    code, message = refused("durable_executions", "stop", execution_id)
    assert code == 4
    assert "Nothing was changed" in message
    assert "STOPPED" in message
    assert len(operator_actions(execution_id)) == 1  # a refused action is not recorded


def test_the_os_user_is_recorded_by_default(runner):
    execution_id, _ = waiting_execution(runner)
    stopped = run_json("durable_executions", "stop", execution_id)
    assert stopped["Status"] == "STOPPED"
    assert operator_actions(execution_id) == [
        {"Action": "stop", "User": getpass.getuser(), "Reason": "stopped by an operator"}
    ]


def test_redrive_resumes_only_a_failed_execution(runner):
    waiting_id, _ = waiting_execution(runner)
    code, message = refused("durable_executions", "redrive", waiting_id)
    assert code == 4
    assert "only FAILED ones redrive" in message
    execution_id = failed_execution(runner)
    broken["on"] = False  # the fix is deployed
    assert "RUNNING" in run("durable_executions", "redrive", execution_id, "--user", "bob")
    assert operator_actions(execution_id) == [{"Action": "redrive", "User": "bob"}]
    result = runner.wait_for_result(execution_id)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result) == {"first": "inside", "second": "fixed"}
    assert refused("durable_executions", "redrive", execution_id)[0] == 4


def test_reenqueue_makes_a_running_execution_due_now(runner):
    execution_id, _ = waiting_execution(runner)
    before = Execution.objects.get(pk=execution_id).wake_at
    run("durable_executions", "reenqueue", execution_id, "--user", "carol")
    assert Execution.objects.get(pk=execution_id).wake_at < before
    assert operator_actions(execution_id) == [{"Action": "reenqueue", "User": "carol"}]
    assert HistoryEvent.objects.filter(execution_id=execution_id, event_type="ExecutionReenqueued").count() == 1
    failed_id = failed_execution(runner)
    assert refused("durable_executions", "reenqueue", failed_id)[0] == 4
    assert operator_actions(failed_id) == []


# Callbacks


def test_a_callback_succeeds_with_json_and_is_recorded(runner):
    execution_id, callback_id = waiting_execution(runner)
    assert "complete callback" in run("durable_callback", "succeed", callback_id, '{"ok": true}', "--user", "dave")
    assert operator_actions(execution_id) == [
        {"Action": "complete callback", "User": "dave", "CallbackId": callback_id}
    ]
    result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == {"value": '{"ok": true}'}
    code, message = refused("durable_callback", "succeed", callback_id, '"again"')
    assert code == 4
    assert "Nothing was changed" in message
    assert Operation.objects.get(callback_id=callback_id).result == '{"ok": true}'
    assert len(operator_actions(execution_id)) == 1


def test_a_result_that_is_not_json_is_refused_unless_raw(runner):
    execution_id, callback_id = waiting_execution(runner)
    code, message = refused("durable_callback", "succeed", callback_id, "approved by phone")
    assert code == 2
    assert "not JSON" in message
    assert Operation.objects.get(callback_id=callback_id).status == "STARTED"
    assert operator_actions(execution_id) == []
    run("durable_callback", "succeed", callback_id, "approved by phone", "--raw")
    assert json.loads(runner.wait_for_result(execution_id).result) == {"value": "approved by phone"}


def test_an_oversized_result_is_refused(runner, settings):
    settings.DURABLE = {**settings.DURABLE, "MAX_CALLBACK_RESULT_BYTES": 1024}
    execution_id, callback_id = waiting_execution(runner)
    code, message = refused("durable_callback", "succeed", callback_id, json.dumps("x" * 1100))
    assert code == 2
    assert "1024 bytes" in message
    assert Operation.objects.get(callback_id=callback_id).status == "STARTED"
    assert operator_actions(execution_id) == []


def test_a_result_is_read_from_stdin(runner, monkeypatch):
    execution_id, callback_id = waiting_execution(runner)
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"from": "stdin"}'))
    as_json = run_json("durable_callback", "succeed", callback_id, "-")
    assert as_json == {"Action": "complete callback", "CallbackId": callback_id, "ExecutionId": execution_id}
    assert json.loads(runner.wait_for_result(execution_id).result) == {"value": '{"from": "stdin"}'}


def test_a_callback_fails_by_hand(runner):
    execution_id, callback_id = waiting_execution(runner)
    run("durable_callback", "fail", callback_id, "--error-type", "Declined", "--message", "no answer", "--user", "eve")
    result = json.loads(runner.wait_for_result(execution_id).result)
    assert result["message"] == "no answer"
    assert operator_actions(execution_id) == [{"Action": "fail callback", "User": "eve", "CallbackId": callback_id}]


def test_a_heartbeat_pushes_the_deadline_back(runner):
    execution_id, callback_id = waiting_execution(runner)
    before = Operation.objects.get(callback_id=callback_id).heartbeat_deadline
    runner.clock.advance_to(runner.clock() + timedelta(seconds=300))
    run("durable_callback", "heartbeat", callback_id, "--user", "frank")
    after = Operation.objects.get(callback_id=callback_id).heartbeat_deadline
    assert after == before + timedelta(seconds=300)
    assert operator_actions(execution_id) == [
        {"Action": "heartbeat callback", "User": "frank", "CallbackId": callback_id}
    ]


def test_unknown_callbacks_exit_with_3(runner):
    for verb, extra in (("succeed", ['"x"']), ("fail", []), ("heartbeat", [])):
        code, message = refused("durable_callback", verb, "no-such-callback", *extra)
        assert code == 3, verb
        assert "Nothing was changed" in message


# A real shell


@pytest.mark.django_db(transaction=True)
def test_manage_py_exits_with_the_codes_a_script_can_test(runner):
    execution_id = failed_execution(runner)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.durable.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "DURABLE_DISPATCHER": "",
    }

    def manage(*args):
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = manage("durable_executions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [row["ExecutionId"] for row in json.loads(listed.stdout)["Executions"]] == [execution_id]
    missing = manage("durable_executions", "show", str(uuid.uuid4()))
    assert missing.returncode == 3
    assert "no execution" in missing.stderr
    wrong_state = manage("durable_executions", "stop", execution_id, "--user", "grace")
    assert wrong_state.returncode == 4
    assert "Nothing was changed" in wrong_state.stderr
    bad_filter = manage("durable_executions", "list", "--status", "DONE")
    assert bad_filter.returncode == 2
    no_verb = manage("durable_executions")
    assert no_verb.returncode != 0
    assert "list" in no_verb.stderr
    broken["on"] = False
    redriven = manage("durable_executions", "redrive", execution_id, "--user", "grace")
    assert redriven.returncode == 0, redriven.stderr
    assert Execution.objects.get(pk=execution_id).status == "RUNNING"
    assert operator_actions(execution_id) == [{"Action": "redrive", "User": "grace"}]


def test_a_callback_id_that_begins_with_a_dash_is_not_taken_for_an_option(runner):
    # Callback ids are URL-safe base64: one in 64 begins with "-".
    execution_id, callback_id = waiting_execution(runner)
    dashed = "-" + callback_id[1:]
    Operation.objects.filter(callback_id=callback_id).update(callback_id=dashed)
    run("durable_callback", "heartbeat", dashed, "--user", "heidi")
    run("durable_callback", "succeed", "--user", "heidi", dashed, "-1", "--json")
    assert json.loads(runner.wait_for_result(execution_id).result) == {"value": "-1"}
    assert [action["CallbackId"] for action in operator_actions(execution_id)] == [dashed, dashed]
    code, _ = refused("durable_callback", "fail", "-no-such-callback", "--message", "-x")
    assert code == 3
