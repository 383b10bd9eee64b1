"""The API with real workers and Redis: a client submits over HTTP, a reviewer approves, a worker
publishes and posts the signed webhook (retried after a failure) to a real local HTTP server; and
an outside system completes a callback over the API."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from approvals.apps import REVIEWERS_GROUP
from approvals.models import Review
from approvals.services import review_decide
from approvals.webhooks import verify_signature
from durable.client import get_execution, start_execution
from durable.models import Operation
from tests import workflows
from tests.api.conftest import Api
from tests.processes import wait_until
from tests.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.processes, pytest.mark.slow, pytest.mark.timeout(90)]

TEXT = (
    "The city council approved a new budget for public libraries. The budget adds evening hours at "
    "four branches. Librarians asked for more staff to cover the longer hours. The council agreed to "
    "hire six people. The changes start next spring."
)
LOCAL_WEBHOOKS = {
    "APPROVALS_WEBHOOK_ALLOW_HTTP": "1",
    "APPROVALS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "1",
    "APPROVALS_WEBHOOK_RETRY_INITIAL_SECONDS": "1",
    "APPROVALS_WEBHOOK_RETRY_MAX_SECONDS": "2",
}


def test_submit_review_publish_and_a_signed_webhook(workers, issue, settings):
    settings.APPROVALS = {
        **getattr(settings, "APPROVALS", {}),
        "WEBHOOK_ALLOW_HTTP": True,
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True,
    }
    workers(1, **LOCAL_WEBHOOKS)
    issued = issue("documents:submit", "executions:read")
    api = Api(Client(), issued.plaintext)
    reviewer = get_user_model().objects.create_user("reviewer")
    Group.objects.get(name=REVIEWERS_GROUP).user_set.add(reviewer)
    with WebhookReceiver([503]) as receiver:
        answer = api.post("/api/documents", {"title": "Budget", "text": TEXT, "callback_url": receiver.url})
        assert answer.status_code == 202, answer.content
        document_id = answer.json()["id"]
        review = wait_until(
            lambda: Review.objects.filter(document__public_id=document_id).first(), 60, message="the review"
        )
        assert api.get(f"/api/documents/{document_id}").json()["status"] == "awaiting_review"
        review_decide(review, reviewer=reviewer, decision="approved", comment="Clear.")
        wait_until(lambda: len(receiver.received) >= 2, 60, message="the webhook, retried once")
    first, second = receiver.received
    assert second.at - first.at >= 0.9  # backoff, not an immediate retry
    headers = second.headers
    assert verify_signature(
        issued.signing_secret, second.body, headers["X-Durable-Timestamp"], headers["X-Durable-Signature"]
    )
    payload = json.loads(second.body)
    assert payload["event"] == "document.published"
    assert payload["document"]["published_text"] == review.summary
    document = api.get(f"/api/documents/{document_id}").json()
    assert (document["status"], document["decision"], document["reviewer_comment"]) == (
        "published",
        "approved",
        "Clear.",
    )
    assert document["published_text"] == review.summary
    execution = wait_until(
        lambda: (
            (e := api.get(f"/api/executions/{answer.json()['execution_id']}").json())["status"] == "SUCCEEDED" and e
        ),
        30,
        message="the execution to end",
    )
    assert execution["result"]["webhook"] == {"delivered": True, "status": 200}


def test_an_outside_system_completes_a_callback_over_the_api(workers, issue):
    workers(1)
    api = Api(Client(), issue("callbacks:complete").plaintext)
    execution = start_execution(workflows.approval, {"timeout": 600})
    callback_id = wait_until(
        lambda: (
            Operation.objects.filter(execution_id=execution.pk, type="CALLBACK", status="STARTED")
            .values_list("callback_id", flat=True)
            .first()
        ),
        30,
        message="the callback",
    )
    response = api.post(f"/api/callbacks/{callback_id}/succeed", {"result": "approved from a chat button"})
    assert response.status_code == 200, response.content
    done = wait_until(lambda: (e := get_execution(execution.pk)).status != "RUNNING" and e, 30, message="the end")
    assert done.status == "SUCCEEDED", done.error
    assert json.loads(done.result)["value"] == "approved from a chat button"
