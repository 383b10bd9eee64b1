"""The product's receiver of the engine's execution_status_changed signal, driven by sending the
signal here (the engine's end-to-end paths are in test_execution_ends.py)."""

import json
from datetime import timedelta

import pytest

from approvals import selectors, workflows
from approvals.errors import ReviewClosedError
from approvals.models import Document, Review
from approvals.services import document_submit, review_decide
from durable import clock
from durable.execution import DurableFunction, register, registered
from durable.models import Execution, OutboxEvent
from durable.signals import execution_status_changed
from durable.testing import DurableTestRunner
from tests.approvals.fixtures import TEXT, make_people
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return make_people()


@pytest.fixture
def runner():
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        yield runner


def awaiting(runner, people, **extra) -> tuple[Document, Review]:
    document = document_submit(title="Coast road", text=TEXT, submitter=people["submitter"], **extra)
    runner.wait_for_callback(str(document.execution_id))
    document.refresh_from_db()
    return document, Review.objects.get(document=document, round=1)


def send(document_or_id, status, previous="RUNNING", *, error=None, at=None, function="summarize_approve_persist"):
    execution_id = document_or_id.execution_id if isinstance(document_or_id, Document) else document_or_id
    execution_status_changed.send(
        sender=registered(function),  # as the engine sends it: the function is the sender
        execution_id=str(execution_id),
        function_name=function,
        execution_name="whatever",
        status=status,
        previous_status=previous,
        error=error,
        timestamp=at or clock.now(),
    )


@pytest.mark.parametrize(
    ("status", "document_status", "words"),
    [
        ("STOPPED", "stopped", "stopped"),
        ("TIMED_OUT", "timed_out", "timed out"),
        ("FAILED", "failed", "failed"),
    ],
)
def test_an_end_outside_the_workflow_makes_the_document_final_and_closes_its_review(
    runner, people, status, document_status, words
):
    document, review = awaiting(runner, people)
    assert list(selectors.review_list_queue(user=people["reviewer"])) == [review]
    error = {"ErrorType": "X", "ErrorMessage": "the operator said so", "ErrorData": None, "StackTrace": []}
    send(document, status, error=error)
    document.refresh_from_db()
    assert document.status == document_status
    assert document.is_final
    assert "the operator said so" in document.status_detail
    assert document.execution_status == status
    assert list(selectors.review_list_queue(user=people["reviewer"])) == []  # out of every queue
    with pytest.raises(ReviewClosedError, match=f"workflow {words}") as refused:
        review_decide(review, reviewer=people["reviewer"], decision="approved")
    assert "expired" not in str(refused.value)
    review.refresh_from_db()
    assert (review.decision, review.reviewer) == ("", None)


def test_the_same_news_twice_or_older_news_changes_nothing(runner, people):
    document, _ = awaiting(runner, people)
    at = clock.now()
    send(document, "STOPPED", at=at)
    document.refresh_from_db()
    first = (document.status, document.status_detail, document.updated_at)
    send(document, "STOPPED", at=at)
    send(document, "FAILED", at=at - timedelta(seconds=5))
    document.refresh_from_db()
    assert (document.status, document.status_detail, document.updated_at) == first
    assert Execution.objects.filter(function_name="document_webhook").count() == 0  # no callback_url


def test_executions_that_are_not_documents_are_ignored(runner, people):
    document, _ = awaiting(runner, people)
    send(document, "STOPPED", function="some.other.function")
    send("6f1c2d1e-0000-4000-8000-000000000000", "STOPPED")
    document.refresh_from_db()
    assert (document.status, document.execution_status) == ("awaiting_review", "")


def test_an_outcome_the_workflow_reached_stands(runner, people):
    document, review = awaiting(runner, people)
    review_decide(review, reviewer=people["reviewer"], decision="rejected", comment="No.")
    runner.wait_for_result(str(document.execution_id))
    send(document, "SUCCEEDED")
    send(document, "FAILED", at=clock.now() + timedelta(seconds=1))
    document.refresh_from_db()
    assert (document.status, document.status_detail) == ("rejected", "No.")


def test_a_redrive_of_a_failed_execution_brings_the_document_back(runner, people):
    document, _ = awaiting(runner, people)
    at = clock.now()
    send(document, "FAILED", at=at)
    send(document, "RUNNING", previous="FAILED", at=at + timedelta(seconds=1))
    document.refresh_from_db()
    assert not document.is_final
    assert document.status == "submitted"
    assert "redrive" in document.status_detail


def test_the_client_is_told_how_the_document_ended(runner, people, settings):
    settings.APPROVALS = {
        **getattr(settings, "APPROVALS", {}),
        "WEBHOOK_ALLOW_HTTP": True,
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True,
    }
    with WebhookReceiver() as receiver:
        document, _ = awaiting(runner, people, callback_url=receiver.url, webhook_key_id="k-1")
        send(document, "STOPPED")
        send(document, "STOPPED")  # told once
        (webhook,) = Execution.objects.filter(function_name="document_webhook")
        with DurableTestRunner(workflows.document_webhook) as webhooks:
            result = webhooks.wait_for_result(str(webhook.pk))
    assert json.loads(result.result)["webhook"] == {"delivered": True, "status": 200}
    (request,) = receiver.received
    payload = json.loads(request.body)
    assert payload["event"] == "document.stopped"
    assert payload["document"]["status"] == "stopped"
    assert request.headers["X-Durable-Delivery"] == f"{document.public_id}-stopped"


def test_the_document_page_says_it_stopped_and_stops_polling(runner, people):
    from django.test import Client

    from durable.client import stop_execution

    document, _ = awaiting(runner, people)
    stop_execution(document.execution_id)
    send(document, "STOPPED")
    reviewer = Client()
    reviewer.force_login(people["reviewer"])
    page = reviewer.get(f"/documents/{document.pk}/").content.decode()
    assert 'data-status="stopped"' in page
    assert '<li class="stopped">Stopped</li>' in page
    assert "Approve</button>" not in page
    assert "hx-trigger" not in page.split('id="live"')[1].split(">")[0]  # no more polling
    live = reviewer.get(f"/documents/{document.pk}/live/", HTTP_HX_REQUEST="true")
    assert live.status_code == 286  # htmx: stop polling


def test_the_product_listens_to_the_document_workflow_only(runner, people):
    """Its receiver is connected with the document workflow as sender: another function's
    executions make no event at all (nobody else listens in the product's settings)."""
    other = DurableFunction(name="tests.approvals.not_a_document", func=lambda event, context: "done")
    register(other)
    with DurableTestRunner(other) as other_runner:
        assert other_runner.run("{}").status == "SUCCEEDED"
    assert not OutboxEvent.objects.exists()
    document, _ = awaiting(runner, people)
    assert list(OutboxEvent.objects.values_list("execution_id", "status")) == [(document.execution_id, "RUNNING")]
