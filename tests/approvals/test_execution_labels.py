"""What the product tells operators about its executions: each document's execution carries the
document's title as its label, and one whose webhook was never delivered ends SUCCEEDED but
marked for attention, which the admin's list shows."""

import json
import re

import pytest

from approvals import workflows
from approvals.models import Review
from approvals.services import WEBHOOK_NOT_DELIVERED, document_submit, document_webhook_start, review_decide
from durable.client import get_history
from durable.models import Execution, Operation
from durable.testing import DurableTestRunner
from tests.approvals.test_webhooks import TEXT, local_webhooks, people, run_to_review  # noqa: F401 - fixtures
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db


def test_a_documents_execution_is_labelled_with_its_title(people):  # noqa: F811
    with DurableTestRunner(workflows.summarize_approve_persist):
        document = document_submit(title="  Library  opening\nhours ", text=TEXT, submitter=people["submitter"])
        long_title = document_submit(title="T" * 200, text=TEXT, submitter=people["submitter"])
    assert Execution.objects.get(pk=document.execution_id).label == "Library opening hours"
    assert Execution.objects.get(pk=long_title.execution_id).label == "T" * 200


def test_the_webhook_workflow_is_labelled_too(people):  # noqa: F811
    with DurableTestRunner(workflows.document_webhook):
        document = document_submit(title="Budget", text=TEXT, submitter=people["submitter"])
        document_webhook_start(document.pk, "stopped")
    webhook = Execution.objects.get(function_name="document_webhook")
    assert webhook.label == "webhook: Budget"


def test_an_undelivered_webhook_leaves_the_execution_succeeded_and_marked(
    local_webhooks,  # noqa: F811
    people,  # noqa: F811
    settings,
    admin_client,
):
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "WEBHOOK_MAX_ATTEMPTS": 3}
    with WebhookReceiver([503] * 10) as receiver, DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document, review = run_to_review(runner, people, receiver.url)
        review_decide(review, reviewer=people["reviewer"], decision="approved")
        result = runner.wait_for_result(str(document.execution_id))
        invocations = runner.invocations
    assert len(receiver.received) == 3
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result)["webhook"]["delivered"] is False
    execution = Execution.objects.get(pk=document.execution_id)
    assert (execution.status, execution.attention) == ("SUCCEEDED", WEBHOOK_NOT_DELIVERED)
    # Marked by one step, run once, though the execution was invoked (and replayed) many times.
    flag = Operation.objects.get(execution=execution, name="flag webhook not delivered")
    assert (flag.status, flag.attempt) == ("SUCCEEDED", 1)
    events = get_history(execution.pk)["Events"]
    assert [e["EventType"] for e in events if e.get("Name") == flag.name] == ["StepStarted", "StepSucceeded"]
    assert invocations >= 4
    listed = admin_client.get("/admin/durable/execution/").content.decode()
    row = next(r for r in re.findall(r"<tr>.*?</tr>", listed, re.S) if f"/{execution.pk}/change/" in r)
    assert "SUCCEEDED" in row
    assert '<span class="attention"' in row
    assert "⚠ webhook not delivered" in row
    assert "Budget" in row  # the label


def test_a_delivered_webhook_leaves_no_mark(local_webhooks, people):  # noqa: F811
    with WebhookReceiver() as receiver, DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document, review = run_to_review(runner, people, receiver.url)
        review_decide(review, reviewer=people["reviewer"], decision="approved")
        runner.wait_for_result(str(document.execution_id))
    execution = Execution.objects.get(pk=document.execution_id)
    assert (execution.status, execution.attention) == ("SUCCEEDED", "")
    assert not Operation.objects.filter(execution=execution, name="flag webhook not delivered").exists()
    assert Review.objects.filter(document=document).count() == 1
