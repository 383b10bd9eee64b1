"""A review's callback completed over the API is a decision: made by the token's owner, only if
they may decide reviews and did not submit the document, recorded with who and when."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from approvals import workflows
from approvals.apps import REVIEWERS_GROUP
from approvals.models import PublishedSummary, Review
from approvals.services import document_submit, review_decide
from durable.models import Execution, Operation
from durable.testing import DurableTestRunner
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db
TEXT = (
    "The river trust will plant two thousand trees along the north bank. Volunteers start in March. "
    "The trees shade the water and keep it cool for fish. Schools will help with the planting. "
    "The trust hopes to double the number by next year."
)


@pytest.fixture
def runner():
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        yield runner


@pytest.fixture
def reviewer():
    user = get_user_model().objects.create_user("api-reviewer")
    Group.objects.get(name=REVIEWERS_GROUP).user_set.add(user)
    return user


def awaiting(runner, submitter):
    document = document_submit(title="Trees", text=TEXT, submitter=submitter)
    runner.wait_for_callback(str(document.execution_id))
    return document, Review.objects.get(document=document, round=1)


def unchanged(review):
    fresh = Review.objects.get(pk=review.pk)
    op = Operation.objects.get(callback_id=review.callback_id)
    return fresh.decision == "" and fresh.reviewer is None and op.status == "STARTED"


def callback_ids_in_history(api, document):
    """What the submitter's own token can read: the review's callback id, from the history."""
    events = api.get(f"/api/executions/{document.execution_id}/history").json()["Events"]
    return {e["CallbackStartedDetails"]["CallbackId"] for e in events if "CallbackStartedDetails" in e}


def test_a_submitter_cannot_approve_their_own_document_through_the_callbacks_api(runner, owner, issue, make_api):
    document, review = awaiting(runner, owner)
    api = make_api(issue("executions:read", "callbacks:complete").plaintext)
    assert review.callback_id in callback_ids_in_history(api, document)
    url = f"/api/callbacks/{review.callback_id}/succeed"
    assert_error(api.post(url, {"result": {"decision": "approved"}}), 403, "not_a_reviewer")
    assert_error(api.post(url, {"result": json.dumps({"decision": "approved"})}), 403, "not_a_reviewer")
    assert_error(api.post(f"/api/callbacks/{review.callback_id}/fail", {}), 403, "not_a_reviewer")
    assert unchanged(review)
    # Even when the submitter is a reviewer: nobody decides on a document they submitted.
    Group.objects.get(name=REVIEWERS_GROUP).user_set.add(owner)
    assert_error(api.post(url, {"result": {"decision": "approved"}}), 403, "reviewer_is_submitter")
    assert_error(api.post(f"/api/callbacks/{review.callback_id}/fail", {}), 403, "reviewer_is_submitter")
    assert unchanged(review)
    assert Execution.objects.get(pk=document.execution_id).status == "RUNNING"
    assert not PublishedSummary.objects.exists()


def test_a_reviewers_token_decides_and_the_decision_is_attributed_to_its_owner(
    runner, owner, reviewer, issue, make_api
):
    document, review = awaiting(runner, owner)
    api = make_api(issue("callbacks:complete", user=reviewer).plaintext)
    response = api.post(
        f"/api/callbacks/{review.callback_id}/succeed", {"result": {"decision": "approved", "comment": " ok "}}
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"callback_id": review.callback_id, "status": "SUCCEEDED"}
    review.refresh_from_db()
    assert (review.decision, review.comment, review.reviewer) == ("approved", "ok", reviewer)
    assert review.decided_at is not None
    result = runner.wait_for_result(str(document.execution_id))
    assert json.loads(result.result)["status"] == "published"
    published = PublishedSummary.objects.get(document=document)
    assert (published.review, published.reviewer) == (review, reviewer)
    again = api.post(f"/api/callbacks/{review.callback_id}/succeed", {"result": {"decision": "rejected"}})
    assert_error(again, 409, "callback_already_completed")


def test_a_review_id_in_the_payload_is_not_trusted(runner, owner, reviewer, issue, make_api):
    document, first = awaiting(runner, owner)
    review_decide(first, reviewer=reviewer, decision="revise", comment="Mention the schools.")
    runner.wait_for_callback(str(document.execution_id))
    second = Review.objects.get(document=document, round=2)
    assert second.summary != first.summary
    api = make_api(issue("callbacks:complete", user=reviewer).plaintext)
    forged = {"decision": "approved", "review_id": first.pk, "reviewer_id": owner.pk}
    assert api.post(f"/api/callbacks/{second.callback_id}/succeed", {"result": forged}).status_code == 200
    runner.wait_for_result(str(document.execution_id))
    published = PublishedSummary.objects.get(document=document)
    assert (published.review_id, published.text, published.reviewer) == (second.pk, second.summary, reviewer)


@pytest.mark.parametrize(
    ("result", "code"),
    [
        ("approved", "invalid_decision"),
        ("not json", "invalid_decision"),
        (["approved"], "invalid_decision"),
        ({"decision": "maybe"}, "invalid_decision"),
        ({"decision": "revise"}, "invalid_decision"),
        ({"decision": "revise", "comment": "   "}, "invalid_decision"),
        ({"decision": "approved", "comment": 5}, "invalid_decision"),
        ({"decision": "revise", "comment": "Shorter.", "start_over": "yes"}, "invalid_decision"),
        ({"comment": "no decision"}, "invalid_decision"),
        (None, "invalid_decision"),
    ],
)
def test_a_result_that_is_no_decision_is_refused_at_once(runner, owner, reviewer, issue, make_api, result, code):
    _, review = awaiting(runner, owner)
    api = make_api(issue("callbacks:complete", user=reviewer).plaintext)
    assert_error(api.post(f"/api/callbacks/{review.callback_id}/succeed", {"result": result}), 422, code)
    assert unchanged(review)


def test_a_revision_over_the_api_may_start_over(runner, owner, reviewer, issue, make_api):
    _, review = awaiting(runner, owner)
    api = make_api(issue("callbacks:complete", user=reviewer).plaintext)
    result = {"decision": "revise", "comment": "Shorter.", "start_over": True}
    assert api.post(f"/api/callbacks/{review.callback_id}/succeed", {"result": result}).status_code == 200
    review.refresh_from_db()
    assert (review.decision, review.comment, review.start_over) == ("revise", "Shorter.", True)
