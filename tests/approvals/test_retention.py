"""The product and the engine's retention: the hold hook keeps the executions of documents not yet
final, and a published document whose journal was purged still shows its page and API status."""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from api.services import token_create
from approvals import selectors, workflows
from approvals.models import Document, DocumentStatus
from approvals.services import document_submit
from durable import client as durable_client
from durable import retention
from durable.exceptions import ExecutionNotFoundError
from durable.testing import DurableTestRunner
from tests.approvals.fixtures import TEXT, make_people

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return make_people()


def published(runner: DurableTestRunner, submitter, reviewer, title: str) -> Document:
    document = document_submit(title=title, text=TEXT, submitter=submitter)
    runner.wait_for_callback(str(document.execution_id))
    review = document.reviews.get(round=1)
    client = Client()
    client.force_login(reviewer)
    client.post(reverse("approvals:review_decide", args=[document.pk, review.pk]), {"decision": "approved"})
    assert runner.wait_for_result(str(document.execution_id)).status == "SUCCEEDED"
    document.refresh_from_db()
    assert document.status == DocumentStatus.PUBLISHED
    return document


def test_the_project_wires_the_products_hold_hook():
    assert settings.DURABLE["RETENTION_HOLD"] == "approvals.selectors.execution_list_held"
    retention.check_settings()


def test_a_purged_published_document_still_shows_its_page_and_api_status(people):
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        done = published(runner, people["submitter"], people["reviewer"], "Road works")
        # Its execution ended, but the product has not caught up with the end yet: held.
        pending = published(runner, people["submitter"], people["reviewer"], "Bridge works")
        Document.objects.filter(pk=pending.pk).update(status=DocumentStatus.PUBLISHING)
        report = retention.purge(now=runner.clock.current + timedelta(days=31))
    assert report.held == 1
    assert report.executions == 1
    with pytest.raises(ExecutionNotFoundError):
        durable_client.get_execution(str(done.execution_id))
    assert durable_client.get_execution(str(pending.execution_id)).status == "SUCCEEDED"

    browser = Client()
    browser.force_login(people["submitter"])
    page = browser.get(reverse("approvals:document", args=[done.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "was purged after its retention period" not in body  # engine internals are for staff
    assert "Road works" in body
    staff = Client()
    people["reviewer"].is_staff = True
    people["reviewer"].save(update_fields=["is_staff"])
    staff.force_login(people["reviewer"])
    assert (
        "was purged after its retention period"
        in staff.get(reverse("approvals:document", args=[done.pk])).content.decode()
    )
    assert page.context["final"] is True  # no polling for a journal that is gone
    live = browser.get(reverse("approvals:document_live", args=[done.pk]), HTTP_HX_REQUEST="true")
    assert live.status_code == 286  # htmx: stop polling

    token = token_create(owner=people["submitter"], name="client", scopes=("documents:submit", "executions:read"))
    headers = {"Authorization": f"Bearer {token.plaintext}"}
    status = browser.get(f"/api/documents/{done.public_id}", headers=headers)
    assert status.status_code == 200
    assert status.json()["status"] == "published"
    assert status.json()["published_text"]
    assert browser.get(f"/api/executions/{done.execution_id}", headers=headers).status_code == 404


def test_the_hook_holds_only_executions_of_documents_not_final(people):
    final = Document.objects.create(
        title="a",
        text=TEXT,
        submitter=people["submitter"],
        status=DocumentStatus.REJECTED,
        execution_id=uuid.UUID(int=1),
    )
    open_ = Document.objects.create(
        title="b",
        text=TEXT,
        submitter=people["submitter"],
        status=DocumentStatus.REVISING,
        execution_id=uuid.UUID(int=2),
    )
    asked = [str(final.execution_id), str(open_.execution_id), str(uuid.UUID(int=3))]
    assert selectors.execution_list_held(asked) == {str(open_.execution_id)}
