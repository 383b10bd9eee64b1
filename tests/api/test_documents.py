"""The documents API: submit, read, list, idempotency, and every bad input changing nothing."""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from api.models import IdempotencyRecord
from approvals.models import Document, PublishedSummary, Review
from durable.models import Execution
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db

BODY = {"title": "Library budget", "text": "The council approved a new budget. It adds evening hours."}


def test_submit_answers_202_and_starts_an_execution(api, owner):
    response = api.post("/api/documents", {**BODY, "metadata": {"source": "crm", "n": 3}})
    assert response.status_code == 202, response.content
    body = response.json()
    document = Document.objects.get()
    assert body["id"] == str(document.public_id)
    assert body["execution_id"] == str(document.execution_id)
    assert body["status"] == "submitted"
    assert body["status_url"] == f"http://testserver/api/documents/{document.public_id}"
    assert (document.submitter, document.metadata, document.title) == (owner, {"source": "crm", "n": 3}, BODY["title"])
    execution = Execution.objects.get(pk=document.execution_id)
    assert json.loads(execution.input) == {
        "document_id": document.pk,
        "in_parts": True,
        "accumulate_feedback": True,
        "reminders": {"remind_after": 2 * 24 * 3600, "escalate_after": 5 * 24 * 3600},
    }
    assert document.webhook_key_id == api.token.split("_")[1]


def test_get_shows_status_summary_decision_comment_and_published_text(api, owner, other_owner):
    document_id = api.post("/api/documents", BODY).json()["id"]
    document = Document.objects.get(public_id=document_id)
    response = api.get(f"/api/documents/{document_id}")
    assert response.status_code == 200
    assert response.json()["status"] == "submitted"
    assert response.json()["summary"] is None
    review = Review.objects.create(
        document=document,
        round=1,
        summary="Evening hours.",
        callback_id="cb-1",
        decision="approved",
        reviewer=other_owner,
        comment="Good.",
    )
    PublishedSummary.objects.create(document=document, review=review, text="Evening hours.", reviewer=other_owner)
    Document.objects.filter(pk=document.pk).update(status="published")
    body = api.get(f"/api/documents/{document_id}").json()
    assert body["status"] == "published"
    assert (body["summary"], body["decision"], body["reviewer_comment"]) == ("Evening hours.", "approved", "Good.")
    assert body["published_text"] == "Evening hours."
    assert body["published_at"] is not None
    assert body["rounds"] == 1


def test_a_token_sees_only_its_owners_documents(api, issue, other_owner, make_api):
    mine = api.post("/api/documents", BODY).json()["id"]
    other = make_api(issue(user=other_owner).plaintext)
    theirs = other.post("/api/documents", {**BODY, "title": "Theirs"}).json()["id"]
    assert_error(other.get(f"/api/documents/{mine}"), 404, "not_found")
    assert [d["id"] for d in other.get("/api/documents").json()["items"]] == [theirs]
    assert [d["id"] for d in api.get("/api/documents").json()["items"]] == [mine]
    # A second token of the same owner sees the owner's documents.
    same_owner = make_api(issue("documents:submit").plaintext)
    assert same_owner.get(f"/api/documents/{mine}").status_code == 200


def test_list_filters_and_paginates(api, owner):
    ids = [api.post("/api/documents", {**BODY, "title": f"Doc {i}"}).json()["id"] for i in range(5)]
    Document.objects.filter(public_id=ids[0]).update(status="rejected")
    page = api.get("/api/documents", {"limit": 2}).json()
    assert (page["count"], page["limit"], page["offset"], page["next_offset"]) == (5, 2, 0, 2)
    assert [d["id"] for d in page["items"]] == ids[::-1][:2]  # newest first
    last = api.get("/api/documents", {"limit": 2, "offset": 4}).json()
    assert [d["id"] for d in last["items"]] == [ids[0]]
    assert last["next_offset"] is None
    rejected = api.get("/api/documents", {"status": "rejected"}).json()
    assert [d["id"] for d in rejected["items"]] == [ids[0]]
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert api.get("/api/documents", {"created_after": future}).json()["count"] == 0
    assert api.get("/api/documents", {"created_before": future}).json()["count"] == 5
    assert_error(api.get("/api/documents", {"status": "nonsense"}), 422, "validation_error")
    assert_error(api.get("/api/documents", {"limit": 0}), 422, "validation_error")
    assert_error(api.get("/api/documents", {"limit": 101}), 422, "validation_error")
    assert_error(api.get("/api/documents", {"created_after": "yesterday"}), 422, "validation_error")


def test_unknown_and_malformed_ids(api):
    assert_error(api.get(f"/api/documents/{uuid.uuid4()}"), 404, "not_found")
    assert_error(api.get("/api/documents/42"), 422, "validation_error")
    assert_error(api.get("/api/nothing-here"), 404, "not_found")


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        ('{"title": "x", "text": ', 400, "invalid_json"),
        ("not json at all", 400, "invalid_json"),
        ("[1, 2]", 422, "validation_error"),
        ('"a string"', 422, "validation_error"),
        ("", 422, "validation_error"),
        (json.dumps({"text": "no title"}), 422, "validation_error"),
        (json.dumps({"title": "no text"}), 422, "validation_error"),
        (json.dumps({"title": 12, "text": "t"}), 422, "validation_error"),
        (json.dumps({"title": "t", "text": ["a", "list"]}), 422, "validation_error"),
        (json.dumps({"title": "t", "text": "t", "metadata": "not an object"}), 422, "validation_error"),
        (json.dumps({"title": "   ", "text": "t"}), 422, "validation_error"),
        (json.dumps({"title": "t", "text": "t", "colour": "red"}), 422, "validation_error"),
        (json.dumps({"title": "x" * 201, "text": "t"}), 422, "validation_error"),
        (
            json.dumps({"title": "t", "text": "t", "callback_url": "ftp://example.com/hook"}),
            422,
            "invalid_callback_url",
        ),
    ],
)
def test_bad_submissions_are_refused_and_change_nothing(api, raw, status, code):
    error = assert_error(api.post("/api/documents", raw=raw), status, code)
    if code == "validation_error":
        assert error["details"]
    assert not Document.objects.exists()
    assert not Execution.objects.exists()


def test_missing_field_is_named_in_the_error(api):
    error = assert_error(api.post("/api/documents", {"title": "t"}), 422, "validation_error")
    assert "text" in error["message"]
    assert any(d["loc"][-1] == "text" for d in error["details"])


def test_oversized_documents_are_refused(api, settings):
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "MAX_DOCUMENT_BYTES": 1000}
    assert api.post("/api/documents", {**BODY, "text": "é" * 500}).status_code == 202  # 1000 bytes: at the limit
    error = assert_error(api.post("/api/documents", {**BODY, "text": "é" * 501}), 413, "document_too_large")
    assert "1000" in error["message"]
    assert_error(api.post("/api/documents", {**BODY, "metadata": {"k": "v" * 20000}}), 413, "metadata_too_large")
    assert Document.objects.count() == 1


def test_a_200_page_document_is_accepted_by_default(api):
    # 500,000 characters (about 200 pages): under the default limit (2,000,000 bytes) and under
    # Django's request body limit, which follows it.
    text = ("The council met again and discussed the harbour. " * 11_000)[:500_000]
    response = api.post("/api/documents", {**BODY, "text": text})
    assert response.status_code == 202, response.content[:300]
    assert len(Document.objects.get().text) == 500_000


def test_a_body_past_djangos_upload_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    assert_error(api.post("/api/documents", {**BODY, "text": "x" * 3000}), 413, "payload_too_large")
    assert not Document.objects.exists()


def test_a_retry_with_the_same_key_and_body_gets_the_first_answer(api):
    first = api.post("/api/documents", BODY, headers={"Idempotency-Key": "order-17"})
    again = api.post("/api/documents", BODY, headers={"Idempotency-Key": "order-17"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert Document.objects.count() == 1
    other_key = api.post("/api/documents", BODY, headers={"Idempotency-Key": "order-18"})
    assert other_key.json()["id"] != first.json()["id"]
    assert Document.objects.count() == 2


def test_the_same_key_with_another_body_is_a_conflict(api):
    api.post("/api/documents", BODY, headers={"Idempotency-Key": "k1"})
    error = assert_error(
        api.post("/api/documents", {**BODY, "text": "Something else."}, headers={"Idempotency-Key": "k1"}),
        409,
        "idempotency_key_reused",
    )
    assert "different request" in error["message"]
    assert Document.objects.count() == 1


def test_keys_are_scoped_per_token(api, issue, make_api):
    first = api.post("/api/documents", BODY, headers={"Idempotency-Key": "shared"}).json()
    second_token = make_api(issue("documents:submit").plaintext)
    second = second_token.post("/api/documents", BODY, headers={"Idempotency-Key": "shared"}).json()
    assert first["id"] != second["id"]
    assert Document.objects.count() == 2


def test_keys_expire(api, settings):
    first = api.post("/api/documents", BODY, headers={"Idempotency-Key": "short-lived"}).json()
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    later = api.post("/api/documents", BODY, headers={"Idempotency-Key": "short-lived"}).json()
    assert later["id"] != first["id"]
    assert IdempotencyRecord.objects.count() == 1
    assert IdempotencyRecord.objects.get().response["id"] == later["id"]


def test_a_failed_submit_does_not_burn_the_key(api):
    bad = {**BODY, "callback_url": "http://10.0.0.1/hook"}
    assert_error(api.post("/api/documents", bad, headers={"Idempotency-Key": "k"}), 422, "invalid_callback_url")
    assert not IdempotencyRecord.objects.exists()
    assert api.post("/api/documents", BODY, headers={"Idempotency-Key": "k"}).status_code == 202


def test_bad_idempotency_keys_are_refused(api):
    assert_error(
        api.post("/api/documents", BODY, headers={"Idempotency-Key": "x" * 256}), 400, "invalid_idempotency_key"
    )
    assert not Document.objects.exists()


def test_a_wrong_method_gets_the_error_shape(api):
    response = api.client.delete("/api/documents", headers=api.headers())
    error = assert_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]
    assert "POST" in error["message"]
    assert_error(api.get("/api/callbacks/abc/succeed"), 405, "method_not_allowed")
