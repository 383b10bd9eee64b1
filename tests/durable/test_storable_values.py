"""Validate once, at the edge: no value the database refuses ever reaches a journal write.

A value that cannot be stored fails its operation once, at once, with an error naming the
operation and the reason; an error message that cannot be stored as it is is stored escaped.
Each case runs on SQLite and again on PostgreSQL (the Makefile's second tier), whose text and
jsonb columns refuse more (NUL, lone surrogates, lengths) than SQLite does.
"""

import json
import os

import pytest

from durable import (
    DurableContext,
    RetryPresets,
    StepConfig,
    StepError,
    ValidationError,
    durable_execution,
)
from durable.client import send_callback_failure, send_callback_success
from durable.config import CallbackConfig, WaitForCallbackConfig
from durable.models import Execution, Operation
from durable.serdes import PassThroughSerDes
from durable.storable import MAX_NAME_LENGTH
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

SCANNED = os.fsdecode(b"scan-\xff.pdf")  # a file name that is not UTF-8: a lone surrogate
NO_RETRY = StepConfig(retry_strategy=RetryPresets.none())
runs: list[str] = []


@pytest.fixture(autouse=True)
def _reset():
    runs.clear()


@durable_execution(name="tests.storable.surrogate_result")
def surrogate_result(event: dict, context: DurableContext) -> dict:
    def scan(_):
        runs.append("scan")
        return {"file": SCANNED, "names": [SCANNED, "plain"]}

    found = context.step(scan, name="scan")
    return {"same": found == {"file": SCANNED, "names": [SCANNED, "plain"]}, "len": len(found["file"])}


def test_a_result_with_a_lone_surrogate_is_stored_exactly_and_replays():
    with DurableTestRunner(surrogate_result) as runner:
        result = runner.run()
    assert result.status == "SUCCEEDED", result.error
    assert json.loads(result.result) == {"same": True, "len": len(SCANNED)}
    assert runs == ["scan"]
    assert runner.invocations == 1


@durable_execution(name="tests.storable.custom_serdes")
def custom_serdes(event: dict, context: DurableContext) -> dict:
    def raw(_):
        runs.append("raw")
        return event["value"] if event["value"] != "SCANNED" else SCANNED

    config = StepConfig(serdes=PassThroughSerDes())
    try:
        context.step(raw, name="raw text", config=config)
    except StepError as exc:
        return {"error_type": exc.error_type, "message": exc.message}
    return {"stored": True}


@pytest.mark.parametrize("value", ["SCANNED", "nul\x00inside"])
def test_a_result_the_database_cannot_store_fails_its_step_once_at_once(value):
    # A custom serdes may hand back text no database column takes: the step fails (no
    # retries: retrying gives the same text), the error names the step and the reason.
    with DurableTestRunner(custom_serdes) as runner:
        result = runner.run(json.dumps({"value": value}))
    assert result.status == "SUCCEEDED", result.error
    outcome = json.loads(result.result)
    assert outcome["error_type"] == "SerDesError"
    assert "'raw text'" in outcome["message"]
    assert ("surrogate" in outcome["message"]) or ("NUL" in outcome["message"])
    assert runs == ["raw"]
    assert runner.invocations == 1
    step = result.get_step("raw text")
    assert (step.status, step.attempt) == ("FAILED", 1)


@durable_execution(name="tests.storable.huge")
def huge(event: dict, context: DurableContext) -> dict:
    try:
        context.step(lambda _: "x" * event["size"], name="big")
    except StepError as exc:
        return {"error_type": exc.error_type, "message": exc.message}
    return {"stored": True}


def test_a_step_result_over_the_size_limit_fails_the_step_with_a_clear_error(settings):
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "MAX_RESULT_BYTES": 1000}
    with DurableTestRunner(huge) as runner:
        small = runner.run(json.dumps({"size": 900}))
        big = runner.run(json.dumps({"size": 5000}))
    assert json.loads(small.result) == {"stored": True}
    outcome = json.loads(big.result)
    assert outcome["error_type"] == "SerDesError"
    assert "'big'" in outcome["message"]
    assert "1000 bytes" in outcome["message"]
    assert big.get_step("big").result is None


def test_the_default_result_size_limit_is_256_kib():
    from durable import conf

    assert conf.SETTINGS.declared["MAX_RESULT_BYTES"].default == 256 * 1024


@durable_execution(name="tests.storable.long_name")
def long_name(event: dict, context: DurableContext) -> dict:
    try:
        if event["kind"] == "step":
            context.step(lambda _: runs.append("body"), name="s" * event["length"])
        elif event["kind"] == "wait_for_callback":
            context.wait_for_callback(lambda cid, _: runs.append("submit"), name="c" * event["length"])
        elif event["kind"] == "nul":
            context.step(lambda _: runs.append("body"), name="bad\x00name")
    except ValidationError as exc:
        return {"refused": str(exc)}
    return {"refused": None}


@pytest.mark.parametrize(
    ("kind", "length"),
    [("step", MAX_NAME_LENGTH + 1), ("step", 300), ("wait_for_callback", MAX_NAME_LENGTH - 5), ("nul", 0)],
)
def test_a_name_that_cannot_be_stored_is_refused_where_the_operation_is_created(kind, length):
    # A wait_for_callback's children are named after it ("<name> create callback id"), so a name
    # that fits may still make names that do not: refused as well, before anything runs.
    with DurableTestRunner(long_name) as runner:
        result = runner.run(json.dumps({"kind": kind, "length": length}))
    assert result.status == "SUCCEEDED", result.error
    refused = json.loads(result.result)["refused"]
    assert refused is not None
    assert f"{MAX_NAME_LENGTH}" in refused or "NUL" in refused
    assert runs == []
    assert runner.invocations == 1
    assert Operation.objects.filter(execution_id=result.execution_id).count() == 0


def test_a_name_at_the_limit_is_stored():
    with DurableTestRunner(long_name) as runner:
        result = runner.run(json.dumps({"kind": "step", "length": MAX_NAME_LENGTH}))
    assert json.loads(result.result) == {"refused": None}
    assert Operation.objects.get(execution_id=result.execution_id).name == "s" * MAX_NAME_LENGTH


@durable_execution(name="tests.storable.bad_error")
def bad_error(event: dict, context: DurableContext) -> dict:
    def fails(_):
        runs.append("fails")
        raise ValueError(event["message"].replace("SCANNED", SCANNED))

    try:
        context.step(fails, name="fails", config=NO_RETRY)
    except StepError as exc:
        return {"message": exc.message}
    return {}


@pytest.mark.parametrize(
    ("message", "stored"),
    [
        ("bad\x00byte", "bad\\x00byte"),
        ("file SCANNED unreadable", "file scan-\\udcff.pdf unreadable"),
        ("plain message", "plain message"),
    ],
)
def test_an_error_message_the_database_refuses_is_stored_escaped_never_lost(message, stored):
    with DurableTestRunner(bad_error) as runner:
        result = runner.run(json.dumps({"message": message}))
    assert result.status == "SUCCEEDED", result.error
    assert json.loads(result.result) == {"message": stored}
    assert result.get_step("fails").error["ErrorMessage"] == stored
    assert runs == ["fails"]
    assert runner.invocations == 1


@durable_execution(name="tests.storable.handler_error")
def handler_error(event: dict, context: DurableContext) -> None:
    context.step(lambda _: 1, name="one")
    raise RuntimeError(f"cannot open {SCANNED}\x00")


def test_an_unhandled_error_with_unstorable_text_fails_the_execution_once():
    with DurableTestRunner(handler_error) as runner:
        result = runner.run()
    assert result.status == "FAILED"
    assert result.error["ErrorType"] == "RuntimeError"
    assert result.error["ErrorMessage"] == "cannot open scan-\\udcff.pdf\\x00"
    assert runner.invocations == 1


@durable_execution(name="tests.storable.callback_values")
def callback_values(event: dict, context: DurableContext) -> dict:
    try:
        value = context.wait_for_callback(
            lambda cid, _: runs.append(cid), name="answer", config=WaitForCallbackConfig()
        )
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"value": value}


@pytest.mark.parametrize("bad", [SCANNED, "nul\x00", "\ud800"])
def test_a_callback_result_that_cannot_be_stored_is_refused_and_changes_nothing(bad):
    with DurableTestRunner(callback_values) as runner:
        execution_id = runner.run_async()
        callback_id = runner.wait_for_callback(execution_id)
        with pytest.raises(ValidationError):
            send_callback_success(callback_id, bad)
        assert Operation.objects.get(callback_id=callback_id).status == "STARTED"
        send_callback_success(callback_id, "fine")
        result = runner.wait_for_result(execution_id)
    assert json.loads(result.result) == {"value": "fine"}


def test_a_callback_failure_with_unstorable_text_is_stored_escaped():
    with DurableTestRunner(callback_values) as runner:
        execution_id = runner.run_async()
        callback_id = runner.wait_for_callback(execution_id)
        send_callback_failure(
            callback_id,
            {"ErrorType": "Bad\x00Type", "ErrorMessage": f"no {SCANNED}", "ErrorData": {"x": float("nan")}},
        )
        result = runner.wait_for_result(execution_id)
    outcome = json.loads(result.result)
    assert outcome == {"error": "CallbackExternalError", "message": "no scan-\\udcff.pdf"}
    error = Operation.objects.get(callback_id=callback_id).error
    assert error["ErrorType"] == "Bad\\x00Type"


@durable_execution(name="tests.storable.callback_name")
def callback_name(event: dict, context: DurableContext) -> dict:
    try:
        context.create_callback(name="n" * 400, config=CallbackConfig())
    except ValidationError as exc:
        return {"refused": str(exc)}
    return {}


def test_a_callback_name_over_the_limit_is_refused():
    with DurableTestRunner(callback_name) as runner:
        result = runner.run()
    assert "256" in json.loads(result.result)["refused"]


@durable_execution(name="tests.storable.returns")
def returns(event: dict, context: DurableContext) -> object:
    return {"file": SCANNED} if event["what"] == "surrogate" else "y" * event["size"]


def test_the_handlers_own_result_is_stored_exactly_or_refused_once(settings):
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "MAX_RESULT_BYTES": 1000}
    with DurableTestRunner(returns) as runner:
        surrogate = runner.run(json.dumps({"what": "surrogate"}))
        too_big = runner.run(json.dumps({"what": "big", "size": 2000}))
    assert surrogate.status == "SUCCEEDED"
    assert json.loads(surrogate.result) == {"file": SCANNED}
    assert too_big.status == "FAILED"
    assert "1000 bytes" in too_big.error["ErrorMessage"]
    assert Execution.objects.get(pk=too_big.execution_id).invocation_count == 1


@durable_execution(name="tests.storable.refused_write")
def refused_write(event: dict, context: DurableContext) -> str:
    context.step(lambda _: runs.append("first"), name="first")
    context.step(lambda _: runs.append("second"), name="second")
    return "done"


@pytest.mark.django_db(transaction=True)  # outside any transaction, as in a worker
def test_a_write_the_database_refuses_anyway_fails_the_execution_once(monkeypatch):
    # The last line of defence, for a value validation did not foresee: a write whose values
    # the database refuses fails the execution at once, saying so, instead of failing every
    # invocation that retries it.
    from durable.store import sql as journal_sql

    real = journal_sql.checkpoint_rows

    def poisoned(execution_id, checkpoints):
        operations, events = real(execution_id, checkpoints)
        name_at = 1 + journal_sql.OPERATION_FIELDS.index("name")
        for row in operations:
            row[name_at] = SCANNED
        return operations, events

    monkeypatch.setattr(journal_sql, "checkpoint_rows", poisoned)
    with DurableTestRunner(refused_write) as runner:
        result = runner.run(timeout=10)
    assert result.status == "FAILED"
    assert result.error["ErrorType"] == "CheckpointRefusedError"
    assert "refused a journal write" in result.error["ErrorMessage"]
    assert runner.invocations == 1
    assert runs == ["first"]  # the invocation stopped at the refused write, before "second"
    assert Execution.objects.get(pk=result.execution_id).lease_token is None


@pytest.mark.parametrize("name", ["bad\x00name", SCANNED])
def test_an_execution_name_that_cannot_be_stored_is_refused(name):
    from durable.client import start_execution

    with pytest.raises(ValidationError, match="execution_name cannot be stored"):
        start_execution(returns, {"what": "surrogate"}, execution_name=name)
    assert not Execution.objects.exists()


def test_an_operators_reason_is_kept_escaped():
    from durable.client import get_history, record_operator_action, start_execution, stop_execution

    execution = start_execution(returns, {"what": "surrogate"})
    stop_execution(execution.pk, error={"ErrorType": "Stopped", "ErrorMessage": f"by hand\x00 {SCANNED}"})
    record_operator_action(execution.pk, action="stop", user="ops\x00", reason=SCANNED)
    stopped = Execution.objects.get(pk=execution.pk)
    assert stopped.error["ErrorMessage"] == "by hand\\x00 scan-\\udcff.pdf"
    action = get_history(execution.pk)["Events"][-1]["OperatorActionDetails"]
    assert action == {"Action": "stop", "User": "ops\\x00", "reason": "scan-\\udcff.pdf"}
