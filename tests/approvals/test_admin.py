"""The admin: documents are a record (decided work read-only, no reviews by hand, deleting is a
permission of its own), staff without a model's permissions get 403 everywhere under it, and
django-rq's dashboard is for superusers or holders of its permission."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from approvals import workflows
from approvals.models import Document, PublishedSummary, Review
from approvals.services import document_submit, review_decide
from durable.testing import DurableTestRunner
from tests.approvals.fixtures import TEXT, make_people

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    people = make_people()
    users = get_user_model().objects
    people["root"] = users.create_superuser("root", "root@example.com", password=None)
    people["staff"] = users.create_user("staff", is_staff=True)
    return people


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def grant(user, *codenames):
    for codename in codenames:
        app, code = codename.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=code))
    return get_user_model().objects.get(pk=user.pk)  # a fresh permission cache


@pytest.fixture
def published(people):
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document = document_submit(title="Ferries", text=TEXT, submitter=people["submitter"])
        runner.wait_for_callback(str(document.execution_id))
        review = Review.objects.get(document=document)
        review_decide(review, reviewer=people["reviewer"], decision="approved", comment="Good.")
        runner.wait_for_result(str(document.execution_id))
    document.refresh_from_db()
    assert document.status == "published"
    return document


@pytest.fixture
def awaiting(people):
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document = document_submit(title="Ferries", text=TEXT, submitter=people["submitter"])
        runner.wait_for_callback(str(document.execution_id))
    return document


def change_url(document) -> str:
    return f"/admin/approvals/document/{document.pk}/change/"


def test_decided_work_is_read_only(people, published):
    root = client_for(people["root"])
    page = root.get(change_url(published))
    assert page.status_code == 200
    assert 'name="text"' not in page.content.decode()
    assert 'name="title"' not in page.content.decode()
    assert 'name="reviews-MAX_NUM_FORMS" value="0"' in page.content.decode()  # no review added by hand
    data = {"title": "Rewritten", "metadata": "{}", "text": "Rewritten text", "submitter": people["root"].pk}
    assert root.post(change_url(published), data).status_code == 403
    published.refresh_from_db()
    assert (published.title, published.text, published.submitter) == ("Ferries", TEXT, people["submitter"])


def test_before_a_decision_only_the_title_and_metadata_change(people, awaiting):
    root = client_for(people["root"])
    page = root.get(change_url(awaiting)).content.decode()
    assert 'name="title"' in page
    assert 'name="metadata"' in page
    assert 'name="text"' not in page
    assert 'name="submitter"' not in page
    review = Review.objects.get(document=awaiting)
    data = {
        "title": "Ferries (2026)",
        "metadata": '{"source": "harbour"}',
        "text": "X",
        "submitter": people["root"].pk,
        "reviews-TOTAL_FORMS": "1",
        "reviews-INITIAL_FORMS": "1",
        "reviews-0-id": str(review.pk),
        "reviews-0-document": str(awaiting.pk),
        "reviews-0-decision": "approved",  # an inline is read-only: ignored
        # The history inline's management form, as the page sends it (read-only rows).
        "audit_entries-TOTAL_FORMS": "0",
        "audit_entries-INITIAL_FORMS": "0",
    }
    answer = root.post(change_url(awaiting), data)
    assert answer.status_code == 302, answer.content.decode()[:2000]
    awaiting.refresh_from_db()
    assert (awaiting.title, awaiting.metadata) == ("Ferries (2026)", {"source": "harbour"})
    assert (awaiting.text, awaiting.submitter) == (TEXT, people["submitter"])
    assert Review.objects.get(pk=review.pk).decision == ""


def test_documents_are_not_added_in_the_admin(people):
    assert client_for(people["root"]).get("/admin/approvals/document/add/").status_code == 403


def test_deleting_takes_its_own_permission_and_a_finished_document(people, published, awaiting):
    staff = grant(people["staff"], "approvals.view_document", "approvals.change_document", "approvals.delete_document")
    client = client_for(staff)
    assert client.get(change_url(published)).status_code == 200
    assert client.post(f"/admin/approvals/document/{published.pk}/delete/", {"post": "yes"}).status_code == 403
    changelist = client.get("/admin/approvals/document/").content.decode()
    assert "delete_selected" not in changelist  # no bulk delete
    purger = client_for(grant(staff, "approvals.purge_document"))
    assert purger.post(f"/admin/approvals/document/{awaiting.pk}/delete/", {"post": "yes"}).status_code == 403
    answer = purger.post(f"/admin/approvals/document/{published.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert not Document.objects.filter(pk=published.pk).exists()
    assert not PublishedSummary.objects.filter(document_id=published.pk).exists()
    assert Document.objects.filter(pk=awaiting.pk).exists()


def test_staff_without_permission_cannot_tell_real_callback_ids_from_made_up_ones(people, awaiting):
    review = Review.objects.get(document=awaiting)
    staff = client_for(people["staff"])
    base = f"/admin/durable/execution/{awaiting.execution_id}/callbacks"
    real = staff.get(f"{base}/{review.callback_id}/succeed/")
    made_up = staff.get(f"{base}/notARealCallbackId/succeed/")
    assert (real.status_code, made_up.status_code) == (403, 403)
    assert staff.get("/admin/durable/execution/00000000-0000-4000-8000-000000000000/change/").status_code == 403


@pytest.mark.processes
def test_the_rq_dashboard_is_for_superusers_and_holders_of_its_permission(people, redis_server, settings):
    settings.RQ_QUEUES["default"]["URL"] = redis_server.url  # the dashboard reads the queues
    reviewer = people["reviewer"]
    reviewer.is_staff = True
    reviewer.save()
    assert client_for(reviewer).get("/admin/django_rq/dashboard/").status_code == 403
    assert "Django-RQ" not in client_for(reviewer).get("/admin/").content.decode()
    assert client_for(people["root"]).get("/admin/django_rq/dashboard/").status_code == 200
    operator = grant(people["staff"], "django_rq.admin")
    assert client_for(operator).get("/admin/django_rq/dashboard/").status_code == 200
    assert "Django-RQ" in client_for(operator).get("/admin/").content.decode()
