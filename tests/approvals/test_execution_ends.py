"""The product follows its execution to every end, through the engine's real paths: a stop from
the admin, the execution's timeout (the sweep), a failure, a redrive. The document gets a final
status that says what happened, its review leaves the queue, the client is told.

These rely on the engine sending durable.signals.execution_status_changed after the commit that
changes an execution's status (the engine's side of issue 14).
"""

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

import llm
from approvals import workflows
from approvals.models import Document, PublishedSummary, Review
from approvals.services import document_submit, review_decide
from durable import clock
from durable.client import get_execution, redrive_execution
from durable.models import Execution
from durable.sweep import sweep
from durable.testing import DurableTestRunner
from llm.errors import AuthenticationError
from tests.api.conftest import Api
from tests.approvals.fixtures import TEXT, make_people
from tests.processes import wait_until
from tests.webhook_receiver import WebhookReceiver

# Transactional: the signal is sent after a real commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def people():
    people = make_people()
    people["operator"] = get_user_model().objects.create_superuser("operator", "op@example.com", password=None)
    return people


@pytest.fixture
def local_webhooks(settings):
    settings.APPROVALS = {
        **getattr(settings, "APPROVALS", {}),
        "WEBHOOK_ALLOW_HTTP": True,
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True,
    }


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def awaiting(runner, people, **extra) -> tuple[Document, Review]:
    document = document_submit(title="Coast road", text=TEXT, submitter=people["submitter"], **extra)
    runner.wait_for_callback(str(document.execution_id))
    return document, Review.objects.get(document=document, round=1)


def webhook_sent(receiver, document, event) -> dict:
    """Run the document's webhook execution (started when it ended) and return what was posted."""
    (webhook,) = Execution.objects.filter(function_name="document_webhook")
    with DurableTestRunner(workflows.document_webhook) as runner:
        runner.wait_for_result(str(webhook.pk))
    (request,) = receiver.received
    payload = json.loads(request.body)
    assert payload["event"] == event
    assert payload["document"]["id"] == str(document.public_id)
    return payload["document"]


def test_stopping_the_execution_from_the_admin_stops_the_document(people, local_webhooks):
    with WebhookReceiver() as receiver, DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document, review = awaiting(runner, people, callback_url=receiver.url, webhook_key_id="k")
        stop = reverse("admin:durable_execution_stop", args=[document.execution_id])
        answer = client_for(people["operator"]).post(stop, {"confirm": "yes", "reason": "sent by mistake"})
        assert answer.status_code == 302
        assert get_execution(document.execution_id).status == "STOPPED"
        document.refresh_from_db()
        assert (document.status, document.is_final) == ("stopped", True)
        assert "sent by mistake" in document.status_detail
        reviewer = client_for(people["reviewer"])
        assert f"/documents/{document.pk}/" not in reviewer.get("/queue/").content.decode()
        decide = reverse("approvals:review_decide", args=[document.pk, review.pk])
        refused = reviewer.post(decide, {"decision": "approved"}, **HTMX)
        assert refused.status_code == 409
        assert "stopped" in refused.content.decode()
        assert "expired" not in refused.content.decode()
        review.refresh_from_db()
        assert review.decision == ""
        assert webhook_sent(receiver, document, "document.stopped")["status"] == "stopped"


def test_an_execution_past_its_timeout_times_the_document_out(people):
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document, _ = awaiting(runner, people)
        Execution.objects.filter(pk=document.execution_id).update(timeout_at=clock.now() - timedelta(seconds=1))
        assert document.execution_id is not None
        assert str(document.execution_id) in sweep().timed_out_executions
        document.refresh_from_db()
        assert document.status == "timed_out"
        assert "time limit" in document.status_detail
        page = client_for(people["reviewer"]).get(f"/documents/{document.pk}/").content.decode()
        assert 'data-status="timed_out"' in page
        assert "Approve</button>" not in page


def test_a_failed_review_callback_fails_the_document_and_a_redrive_brings_it_back(people, issue_token):
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document, review = awaiting(runner, people)
        api = Api(Client(), issue_token(people["reviewer"]))
        answer = api.post(f"/api/callbacks/{review.callback_id}/fail", {"error": {"message": "the system broke"}})
        assert answer.status_code == 200, answer.content
        result = runner.wait_for_result(str(document.execution_id))
        assert result.status == "FAILED"
        document.refresh_from_db()
        assert (document.status, document.execution_status) == ("failed", "FAILED")
        assert "the system broke" in document.status_detail
        redrive_execution(document.execution_id)
        document.refresh_from_db()
        assert (document.status, document.execution_status) == ("submitted", "RUNNING")
        runner.wait_for_callback(str(document.execution_id))
        document.refresh_from_db()
        assert document.status == "awaiting_review"
        review = Review.objects.get(document=document, round=1)
        review_decide(review, reviewer=people["second"], decision="approved")
        assert json.loads(runner.wait_for_result(str(document.execution_id)).result)["status"] == "published"
    assert PublishedSummary.objects.filter(document=document).exists()


def test_a_summarizer_failure_tells_the_client_and_a_redrive_resumes(people, local_webhooks, monkeypatch):
    def denied(text, **kwargs):
        raise AuthenticationError("invalid API key", provider="fake")

    real = llm.summarize
    monkeypatch.setattr(llm, "summarize", denied)
    with WebhookReceiver() as receiver, DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document = document_submit(
            title="Coast road", text=TEXT, submitter=people["submitter"], callback_url=receiver.url
        )
        assert runner.wait_for_result(str(document.execution_id)).status == "FAILED"
        document.refresh_from_db()
        assert document.status == "failed"
        assert "invalid API key" in document.status_detail  # the workflow's own words stand
        assert webhook_sent(receiver, document, "document.failed")["status"] == "failed"
        monkeypatch.setattr(llm, "summarize", real)  # the provider is fixed
        redrive_execution(document.execution_id)
        runner.wait_for_callback(str(document.execution_id))
        document.refresh_from_db()
        assert document.status == "awaiting_review"


@pytest.fixture
def issue_token():
    from api.services import token_create

    return lambda user: token_create(owner=user, name="t", scopes=["callbacks:complete"]).plaintext


@pytest.mark.processes
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_with_real_workers_a_stopped_document_is_posted_to_the_client(workers, people, local_webhooks):
    workers(1, APPROVALS_WEBHOOK_ALLOW_HTTP="1", APPROVALS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES="1")
    with WebhookReceiver() as receiver:
        document = document_submit(
            title="Coast road", text=TEXT, submitter=people["submitter"], callback_url=receiver.url
        )
        wait_until(lambda: Review.objects.filter(document=document).exists(), 60, message="the review")
        stop = reverse("admin:durable_execution_stop", args=[document.execution_id])
        assert client_for(people["operator"]).post(stop, {"confirm": "yes"}).status_code == 302
        document.refresh_from_db()
        assert document.status == "stopped"
        wait_until(lambda: receiver.received, 60, message="the webhook from a worker")
    payload = json.loads(receiver.received[0].body)
    assert (payload["event"], payload["document"]["status"]) == ("document.stopped", "stopped")
