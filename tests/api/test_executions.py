"""Executions and their history: a token reads those its owner started; operators (their own
scope) read any durable function's."""

import json
import uuid

import pytest

from durable import DurableContext, durable_execution
from durable.testing import DurableTestRunner
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


@durable_execution(name="tests.api.adds")
def adds(event: dict, context: DurableContext) -> int:
    return context.step(lambda _: event["a"] + event["b"], name="add")


@pytest.fixture
def finished():
    with DurableTestRunner(adds) as runner:
        return runner.run(json.dumps({"a": 2, "b": 3}))


@pytest.fixture
def operator(issue, make_api):
    return make_api(issue("executions:read_all").plaintext)


def test_get_an_execution(operator, finished):
    api = operator
    response = api.get(f"/api/executions/{finished.execution_id}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["function_name"], body["status"], body["input"], body["result"]) == (
        "tests.api.adds",
        "SUCCEEDED",
        {"a": 2, "b": 3},
        5,
    )
    assert body["error"] is None
    assert body["ended_at"] is not None


@durable_execution(name="tests.api.invokes_adds")
def invokes_adds(event: dict, context: DurableContext) -> int:
    return context.invoke("tests.api.adds", event, name="add elsewhere")


def test_an_invoked_execution_and_its_parent_link_each_other(operator):
    with DurableTestRunner(invokes_adds) as runner:
        parent = runner.run(json.dumps({"a": 4, "b": 5}))
    body = operator.get(f"/api/executions/{parent.execution_id}").json()
    assert body["result"] == 9
    assert body["parent_execution_id"] is None
    (child_id,) = body["invoked_execution_ids"]
    child = operator.get(f"/api/executions/{child_id}").json()
    assert (child["function_name"], child["result"]) == ("tests.api.adds", 9)
    assert child["parent_execution_id"] == parent.execution_id
    assert child["parent_operation_id"] == parent.get_operation_by_name("add elsewhere").operation_id
    assert child["invoked_execution_ids"] == []


def test_history_in_the_official_shape(operator, finished):
    api = operator
    events = api.get(f"/api/executions/{finished.execution_id}/history").json()["Events"]
    types = [e["EventType"] for e in events]
    assert types[0] == "ExecutionStarted"
    assert types[-1] == "ExecutionSucceeded"
    assert "StepSucceeded" in types
    assert [e["EventId"] for e in events] == list(range(1, len(events) + 1))
    started = events[0]["ExecutionStartedDetails"]["Input"]
    assert json.loads(started["Payload"]) == {"a": 2, "b": 3}
    elided = api.get(f"/api/executions/{finished.execution_id}/history", {"include_execution_data": "false"})
    assert elided.json()["Events"][0]["ExecutionStartedDetails"]["Input"] == {"Truncated": True}


def test_unknown_and_malformed_execution_ids(api):
    assert_error(api.get(f"/api/executions/{uuid.uuid4()}"), 404, "not_found")
    assert_error(api.get(f"/api/executions/{uuid.uuid4()}/history"), 404, "not_found")
    assert_error(api.get("/api/executions/not-a-uuid"), 422, "validation_error")


def test_executions_need_their_scope(issue, make_api, finished):
    submitter = make_api(issue("documents:submit").plaintext)
    assert_error(submitter.get(f"/api/executions/{finished.execution_id}"), 403, "missing_scope")
    assert_error(submitter.get(f"/api/executions/{finished.execution_id}/history"), 403, "missing_scope")
    reader = make_api(issue("executions:read_all").plaintext)
    assert reader.get(f"/api/executions/{finished.execution_id}").status_code == 200
    assert_error(reader.post("/api/documents", {"title": "t", "text": "t"}), 403, "missing_scope")


def test_a_token_reads_only_the_executions_its_owner_started(issue, make_api, owner, other_owner, finished):
    from approvals.services import document_submit

    mine = document_submit(title="Mine", text="Some text.", submitter=owner)
    theirs = document_submit(title="Theirs", text="Other text.", submitter=other_owner)
    reader = make_api(issue("executions:read").plaintext)
    assert reader.get(f"/api/executions/{mine.execution_id}").status_code == 200
    assert reader.get(f"/api/executions/{mine.execution_id}/history").status_code == 200
    for path in (f"/api/executions/{theirs.execution_id}", f"/api/executions/{theirs.execution_id}/history"):
        error = assert_error(reader.get(path), 404, "not_found")  # as unknown as a missing one
        assert "Other text" not in json.dumps(error)
    # Not a document's: nobody's but the operators'.
    assert_error(reader.get(f"/api/executions/{finished.execution_id}"), 404, "not_found")
    operator = make_api(issue("executions:read_all").plaintext)
    assert operator.get(f"/api/executions/{theirs.execution_id}/history").status_code == 200
    assert operator.get(f"/api/executions/{finished.execution_id}").status_code == 200
