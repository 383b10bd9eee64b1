"""Issue 18's queue (sort, search, filters, pages, count), claims, audit trail and the next
document after a decision, through Django's test client and the services."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from api.services import token_create
from approvals import selectors, services, workflows
from approvals.apps import REVIEWERS_GROUP
from approvals.errors import ReviewAlreadyDecidedError, ReviewClaimedError
from approvals.models import AuditEntry, Document, DocumentStatus, Review
from approvals.services import document_submit
from durable.testing import DurableTestRunner
from tests.approvals.test_views import HTMX, TEXT, _frozen_minute  # noqa: F401 - the autouse fixture too

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    users = get_user_model().objects
    reviewers = Group.objects.get(name=REVIEWERS_GROUP)
    people = {
        "submitter": users.create_user("submitter", email="submitter@example.com"),
        "other": users.create_user("other", email="other@example.com"),
        "reviewer": users.create_user("reviewer", email="reviewer@example.com"),
        "second": users.create_user("second", email="second@example.com"),
        "mute": users.create_user("mute"),  # a reviewer without an e-mail address
        "outsider": users.create_user("outsider", email="outsider@example.com"),
        "staff": users.create_user("staffer", is_staff=True),
    }
    for name in ("reviewer", "second", "mute"):
        people[name].groups.add(reviewers)
    return people


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def runner():
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        yield runner


def awaiting(runner, people, title="Harbour works", text=TEXT, submitter="submitter"):
    document = document_submit(title=title, text=text, submitter=people[submitter])
    runner.wait_for_callback(str(document.execution_id))
    document.refresh_from_db()
    return document, document.reviews.get(round=1)


_callbacks = iter(range(10**6))


def stored_review(people, title, *, submitter="submitter", round_number=1, age_minutes=0, deadline_hours=None, text=""):
    """A document awaiting a review, stored directly (no workflow): for the queue's reads."""
    document = Document.objects.create(
        title=title,
        text=text or f"{title}. Some text.",
        submitter=people[submitter],
        status=DocumentStatus.AWAITING_REVIEW,
    )
    review = Review.objects.create(
        document=document,
        round=round_number,
        summary="S.",
        callback_id=f"cb-{next(_callbacks)}",
        expires_at=timezone.now() + timedelta(hours=deadline_hours) if deadline_hours is not None else None,
    )
    Review.objects.filter(pk=review.pk).update(created_at=timezone.now() - timedelta(minutes=age_minutes))
    return review


def queue_titles(client, **params) -> list[str]:
    page = client.get(reverse("approvals:queue"), params)
    assert page.status_code == 200
    return [r.document.title for r in page.context["reviews"]]


def test_the_queue_sorts_by_age_and_by_deadline(people):
    stored_review(people, "Middle", age_minutes=20, deadline_hours=1)
    stored_review(people, "Oldest", age_minutes=30, deadline_hours=5)
    stored_review(people, "Newest", age_minutes=10)  # no deadline: last when sorted by deadline
    reviewer = client_for(people["reviewer"])
    assert queue_titles(reviewer) == ["Newest", "Middle", "Oldest"]
    assert queue_titles(reviewer, order="oldest") == ["Oldest", "Middle", "Newest"]
    assert queue_titles(reviewer, order="deadline") == ["Middle", "Oldest", "Newest"]
    assert queue_titles(reviewer, order="no-such-order") == ["Newest", "Middle", "Oldest"]


def test_the_queue_searches_title_and_text_and_filters_by_round_and_submitter(people):
    stored_review(people, "Harbour dredging", text="The east channel gets deeper.")
    stored_review(people, "Library hours", text="Open late on Thursdays near the HARBOUR.", round_number=2)
    stored_review(people, "Bus detour", submitter="other", round_number=2)
    reviewer = client_for(people["reviewer"])
    assert sorted(queue_titles(reviewer, q="harbour")) == ["Harbour dredging", "Library hours"]
    assert queue_titles(reviewer, q="harbour thursdays") == ["Library hours"]  # every word
    assert sorted(queue_titles(reviewer, round="2")) == ["Bus detour", "Library hours"]
    assert queue_titles(reviewer, round="2", submitter="other") == ["Bus detour"]
    assert len(queue_titles(reviewer, round="x'; --")) == 3  # malformed: ignored
    page = reviewer.get(reverse("approvals:queue"), {"q": "nothing-like-this"}).content.decode()
    assert "No open review matches" in page


def test_the_queue_pages_beyond_200_and_counts_open_reviews_in_the_tab_title(people):
    for n in range(205):
        stored_review(people, f"Doc {n:03}", age_minutes=n)
    reviewer = client_for(people["reviewer"])
    first = reviewer.get(reverse("approvals:queue"))
    html = first.content.decode()
    assert "<title>Review queue (205 open) · Durable approvals</title>" in html
    assert first.context["page"].paginator.num_pages == 5
    last = reviewer.get(reverse("approvals:queue"), {"page": 5, "order": "oldest"})
    assert [r.document.title for r in last.context["reviews"]] == [
        "Doc 004",
        "Doc 003",
        "Doc 002",
        "Doc 001",
        "Doc 000",
    ]
    newest_last_page = reviewer.get(reverse("approvals:queue"), {"page": 5})
    assert [r.document.title for r in newest_last_page.context["reviews"]][-1] == "Doc 204"  # the oldest, beyond 200
    assert "order=oldest&amp;page=4" in last.content.decode()  # the pager keeps the order


def test_a_queue_page_costs_the_same_queries_at_any_queue_size(people):
    reviewer = client_for(people["reviewer"])

    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert reviewer.get(reverse("approvals:queue"), {"order": "deadline", "q": "doc"}).status_code == 200
        return len(queries)

    stored_review(people, "Doc one", deadline_hours=3)
    few = page_queries()
    for n in range(60):
        stored_review(people, f"Doc {n}", deadline_hours=n, submitter="other")
    assert page_queries() == few


def test_the_deadline_order_is_served_by_an_index():
    if connection.vendor == "postgresql":  # a few rows: make the planner show what it can use
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
    plan = str(Review.objects.filter(decision="").order_by("expires_at").values("pk").explain())
    assert "approvals_review_deadline" in plan


def test_a_claim_shows_who_and_since_when_and_others_must_confirm_to_decide(runner, people):
    document, review = awaiting(runner, people)
    reviewer, second = client_for(people["reviewer"]), client_for(people["second"])
    claim_url = reverse("approvals:review_claim", args=[document.pk, review.pk])
    answer = reviewer.post(claim_url, {"action": "claim"}, **HTMX)
    assert answer.status_code == 200
    assert "Claimed by you" in answer.content.decode()

    queue = second.get(reverse("approvals:queue")).content.decode()
    assert "by reviewer" in queue
    assert "since" in queue
    page = second.get(reverse("approvals:document", args=[document.pk])).content.decode()
    assert "Claimed by reviewer" in page
    assert 'name="override_claim"' in page
    assert second.post(claim_url, {"action": "claim"}, **HTMX).status_code == 409  # not taken silently

    decide = reverse("approvals:review_decide", args=[document.pk, review.pk])
    refused = second.post(decide, {"decision": "approved"}, **HTMX)
    assert refused.status_code == 409
    assert "confirm" in refused.content.decode()
    assert Review.objects.get(pk=review.pk).decision == ""  # the server refused, not only the page

    taken = second.post(decide, {"decision": "approved", "override_claim": "yes"}, **HTMX)
    assert taken.status_code == 200
    fresh = Review.objects.get(pk=review.pk)
    assert (fresh.decision, fresh.reviewer) == ("approved", people["second"])
    entry = AuditEntry.objects.filter(document=document, kind="decision").get()
    assert entry.actor == people["second"]
    assert "(claimed by reviewer)" in entry.detail


def test_the_claimant_decides_without_confirming_and_may_release(runner, people):
    _document, review = awaiting(runner, people)
    services.review_claim(review, reviewer=people["reviewer"])
    services.review_release(review, reviewer=people["reviewer"])
    assert Review.objects.get(pk=review.pk).claimed_by is None
    services.review_claim(review, reviewer=people["reviewer"])
    with pytest.raises(ReviewClaimedError):
        services.review_release(review, reviewer=people["second"])
    services.review_decide(review, reviewer=people["reviewer"], decision="approved")
    assert Review.objects.get(pk=review.pk).decision == "approved"


def test_a_claim_lapses_after_the_setting_s_hours(runner, people, settings):
    settings.APPROVALS = {"CLAIM_HOURS": 2}
    document, review = awaiting(runner, people)
    services.review_claim(review, reviewer=people["reviewer"])
    review.refresh_from_db()
    assert selectors.review_claim_is_live(review=review)
    Review.objects.filter(pk=review.pk).update(claimed_at=timezone.now() - timedelta(hours=2, minutes=1))
    review.refresh_from_db()
    assert not selectors.review_claim_is_live(review=review)
    page = client_for(people["second"]).get(reverse("approvals:document", args=[document.pk])).content.decode()
    assert "Claimed by reviewer" not in page
    assert 'name="override_claim"' not in page
    services.review_claim(review, reviewer=people["second"])  # a lapsed claim can be taken
    assert Review.objects.get(pk=review.pk).claimed_by == people["second"]


def test_remind_recipients_are_the_claimant_else_every_reviewer(runner, people):
    _document, review = awaiting(runner, people)
    # Reviewers with an address; never the submitter (even if a reviewer) nor non-reviewers.
    people["submitter"].groups.add(Group.objects.get(name=REVIEWERS_GROUP))
    assert selectors.review_remind_recipients(review) == ["reviewer@example.com", "second@example.com"]
    services.review_claim(review, reviewer=people["second"])
    review.refresh_from_db()
    assert selectors.review_remind_recipients(review) == ["second@example.com"]
    Review.objects.filter(pk=review.pk).update(claimed_at=timezone.now() - timedelta(days=30))
    review.refresh_from_db()
    assert selectors.review_remind_recipients(review) == ["reviewer@example.com", "second@example.com"]


def kinds(document) -> list[tuple[str, str | None]]:
    return [(e.kind, e.actor.username if e.actor else None) for e in AuditEntry.objects.filter(document=document)]


def test_the_audit_trail_records_each_step_with_who_and_when(runner, people):
    document, review = awaiting(runner, people)
    services.review_claim(review, reviewer=people["reviewer"])
    services.review_decide(review, reviewer=people["reviewer"], decision="revise", comment="=shorter please")
    runner.wait_for_callback(str(document.execution_id))
    second = document.reviews.get(round=2)
    services.review_decide(second, reviewer=people["second"], decision="approved")
    runner.wait_for_result(str(document.execution_id))
    assert kinds(document) == [
        ("submitted", "submitter"),
        ("summary", None),
        ("claimed", "reviewer"),
        ("revision_requested", "reviewer"),
        ("summary", None),
        ("decision", "second"),
        ("outcome", None),
    ]
    entries = list(AuditEntry.objects.filter(document=document))
    assert all(e.created_at is not None for e in entries)
    assert [e.created_at for e in entries] == sorted(e.created_at for e in entries)
    assert "round 2" in entries[4].detail
    assert entries[6].detail == "Published"

    page = client_for(people["submitter"]).get(reverse("approvals:document", args=[document.pk])).content.decode()
    assert "<h2>History</h2>" in page
    assert "Revision requested" in page
    assert "asked for a revision of round 1" in page
    assert "Claimed" in page
    assert "Summary written" in page


def test_an_outside_decision_is_recorded_with_the_token_s_owner(runner, people, client):
    document, review = awaiting(runner, people)
    services.review_claim(review, reviewer=people["second"])  # a claim does not stop the API
    token = token_create(owner=people["reviewer"], name="mail bridge", scopes=["callbacks:complete"])
    answer = client.post(
        f"/api/callbacks/{review.callback_id}/succeed",
        {"result": {"decision": "rejected", "comment": "off topic"}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token.plaintext}"},
    )
    assert answer.status_code == 200, answer.content
    entry = AuditEntry.objects.get(document=document, kind="outside_decision")
    assert entry.actor == people["reviewer"]
    assert "rejected round 1 through the API" in entry.detail
    assert "off topic" in entry.detail


def test_a_stop_is_recorded(runner, people):
    document, _ = awaiting(runner, people)
    timestamp = timezone.now() + timedelta(seconds=5)
    services.document_follow_execution(
        execution_id=str(document.execution_id),
        status="STOPPED",
        previous_status="RUNNING",
        error=None,
        timestamp=timestamp,
    )
    entry = AuditEntry.objects.get(document=document, kind="stopped")
    assert entry.actor is None
    assert "stopped" in entry.detail


def test_document_record_event_is_the_one_writer_with_its_signature(people):
    document = Document.objects.create(title="T", text="Words here.", submitter=people["submitter"])
    entry = services.document_record_event(document.pk, "reminder", None, "x" * 5000)
    assert (entry.document_id, entry.kind, entry.actor, len(entry.detail)) == (document.pk, "reminder", None, 1000)
    assert entry.detail.endswith("…")
    services.document_record_event(document.pk, "escalation", people["staff"], "told the admins")
    assert selectors.EVENT_WORDS["reminder"] == "Reminder sent"
    assert [e.kind for e in selectors.document_list_events(document_id=document.pk)] == ["reminder", "escalation"]


def read_csv(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_audit_csv_is_for_staff_whole_for_others_their_documents_and_formula_safe(people):
    mine = Document.objects.create(title='=HYPERLINK("http://x")', text="Words.", submitter=people["submitter"])
    theirs = Document.objects.create(title="Other's", text="Words.", submitter=people["other"])
    for document in (mine, theirs):
        services.document_record_event(document.pk, "submitted", document.submitter, "+1 cmd|' /C calc'!A0")
    services.document_record_event(mine.pk, "decision", None, "@SUM(1)")
    services.document_record_event(mine.pk, "decision", None, '-2 and a plain, quoted "detail"')

    rows = read_csv(client_for(people["staff"]).get(reverse("approvals:audit_export")))
    assert rows[0] == ["time", "document_id", "document", "event", "who", "detail"]
    assert len(rows) == 5
    cells = [cell for row in rows[1:] for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert '\'=HYPERLINK("http://x")' in cells
    assert "'@SUM(1)" in cells
    assert '\'-2 and a plain, quoted "detail"' in cells

    own = read_csv(client_for(people["submitter"]).get(reverse("approvals:audit_export")))
    assert {row[1] for row in own[1:]} == {str(mine.pk)}
    one = read_csv(client_for(people["staff"]).get(reverse("approvals:audit_export"), {"document": theirs.pk}))
    assert [row[2] for row in one[1:]] == ["Other's"]
    assert client_for(people["staff"]).get(reverse("approvals:audit_export"), {"document": "1 or 1"}).status_code == 400
    assert Client().get(reverse("approvals:audit_export")).status_code == 302  # log in first


def test_decided_reviews_cannot_be_claimed_and_decided_documents_not_changed_in_the_admin(runner, people):
    document, review = awaiting(runner, people)
    services.review_decide(review, reviewer=people["reviewer"], decision="rejected", comment="no")
    runner.wait_for_result(str(document.execution_id))
    with pytest.raises(ReviewAlreadyDecidedError):
        services.review_claim(review, reviewer=people["second"])
    root = get_user_model().objects.create_superuser("root", "root@example.com", password=None)
    admin = client_for(root)
    url = f"/admin/approvals/document/{document.pk}/change/"
    assert admin.post(url, {"title": "Changed", "metadata": "{}"}).status_code == 403
    entries = admin.get("/admin/approvals/auditentry/")
    assert entries.status_code == 200
    assert "Harbour works" in entries.content.decode()
    entry = AuditEntry.objects.filter(document=document).first()
    assert admin.post(f"/admin/approvals/auditentry/{entry.pk}/change/", {"detail": "x"}).status_code == 403
    assert admin.get("/admin/approvals/auditentry/add/").status_code == 403
    page = admin.get(url).content.decode()
    assert "History" in page
    assert 'name="audit_entries-0-detail"' not in page


def test_after_deciding_the_page_offers_the_next_document(runner, people):
    first, review = awaiting(runner, people, title="First")
    second_doc, _ = awaiting(runner, people, title="Second")
    third_doc, third = awaiting(runner, people, title="Third")
    services.review_claim(Review.objects.get(document=second_doc), reviewer=people["second"])  # held by another
    reviewer = client_for(people["reviewer"])
    page = reviewer.get(reverse("approvals:document", args=[second_doc.pk])).content.decode()
    assert f'href="/documents/{first.pk}/" data-key="prev"' in page
    assert f'href="/documents/{third_doc.pk}/" data-key="next"' in page

    decided = reviewer.post(
        reverse("approvals:review_decide", args=[first.pk, review.pk]), {"decision": "approved"}, **HTMX
    ).content.decode()
    assert 'id="next-document"' in decided
    assert f'href="/documents/{third_doc.pk}/"' in decided
    assert "Next document: Third" in decided
    services.review_decide(third, reviewer=people["second"], decision="approved")
    last = reviewer.post(
        reverse("approvals:review_decide", args=[second_doc.pk, Review.objects.get(document=second_doc).pk]),
        {"decision": "rejected", "override_claim": "yes", "comment": "no"},
        **HTMX,
    ).content.decode()
    assert 'id="next-document"' not in last
    assert "Nothing else is waiting for you" in last


def test_the_queue_and_document_pages_load_the_shortcuts_and_their_help(runner, people):
    document, _ = awaiting(runner, people)
    reviewer = client_for(people["reviewer"])
    for url in (reverse("approvals:queue"), reverse("approvals:document", args=[document.pk])):
        page = reviewer.get(url).content.decode()
        assert "js/keys.js" in page
        assert '<dialog id="shortcuts"' in page
        assert 'id="key-announcer"' in page
        assert 'aria-live="assertive"' in page


def test_the_queue_poll_sees_claims_and_releases(runner, people):
    document, review = awaiting(runner, people)
    second = client_for(people["second"])

    def version() -> str:
        return second.get(reverse("approvals:queue")).context["version"]

    before = version()
    services.review_claim(review, reviewer=people["reviewer"])
    claimed = version()
    assert claimed != before
    assert second.get(reverse("approvals:queue"), {"v": claimed}, **HTMX).status_code == 204
    services.review_release(review, reviewer=people["reviewer"])
    assert version() not in (claimed, "")
    assert "by reviewer" not in second.get(reverse("approvals:queue")).content.decode()
    assert document.pk


@pytest.mark.django_db(transaction=True)  # the engine's status signal goes out after a real commit
def test_failing_a_review_through_the_api_is_an_outside_decision_with_its_owner(runner, people, client):
    document, review = awaiting(runner, people)
    token = token_create(owner=people["reviewer"], name="ops", scopes=["callbacks:complete"])
    answer = client.post(
        f"/api/callbacks/{review.callback_id}/fail",
        {"error": {"message": "the system broke"}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token.plaintext}"},
    )
    assert answer.status_code == 200, answer.content
    runner.wait_for_result(str(document.execution_id))
    entry = AuditEntry.objects.get(document=document, kind="outside_decision")
    assert entry.actor == people["reviewer"]
    assert "failed the review of round 1 through the API: the system broke" in entry.detail
    assert AuditEntry.objects.filter(document=document, kind="stopped", actor=None).exists()
