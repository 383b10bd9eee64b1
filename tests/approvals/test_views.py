"""The reviewers' UI through Django's test client: permissions, CSRF, escaping, polling answers."""

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import path, reverse

from approvals import selectors, workflows
from approvals.apps import REVIEWERS_GROUP
from approvals.models import Document, DocumentStatus, PublishedSummary, Review
from approvals.services import document_submit
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db

TEXT = (
    "The harbour authority will dredge the east channel this winter. Work starts in November and "
    "lasts six weeks. Ferries keep running on a reduced timetable. Fishing boats must use the west "
    "channel during the works. The authority expects deeper water to allow larger cargo ships."
)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _frozen_minute(monkeypatch):
    """Versions include the minute (so ages refresh); freeze it so no test straddles a minute."""
    monkeypatch.setattr(selectors, "_minute", lambda: 0)


@pytest.fixture
def people():
    users = get_user_model().objects
    reviewers = Group.objects.get(name=REVIEWERS_GROUP)
    people = {
        "submitter": users.create_user("submitter", password="pw-submitter-1"),
        "reviewer": users.create_user("reviewer", password="pw-reviewer-1"),
        "second": users.create_user("second", password="pw-second-1"),
        "outsider": users.create_user("outsider", password="pw-outsider-1"),
        "staff": users.create_user("staffer", password="pw-staff-1", is_staff=True),
    }
    people["reviewer"].groups.add(reviewers)
    people["second"].groups.add(reviewers)
    return people


def client_for(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


@pytest.fixture
def runner():
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        yield runner


def awaiting(runner, people, title="Harbour works", text=TEXT, submitter="submitter") -> tuple[Document, Review]:
    document = document_submit(title=title, text=text, submitter=people[submitter])
    runner.wait_for_callback(str(document.execution_id))
    document.refresh_from_db()
    return document, document.reviews.get(round=1)


def decide_url(document, review) -> str:
    return reverse("approvals:review_decide", args=[document.pk, review.pk])


def test_migrate_creates_the_reviewers_group_with_the_decision_permission():
    group = Group.objects.get(name=REVIEWERS_GROUP)
    assert list(group.permissions.values_list("codename", flat=True)) == ["decide_review"]


@pytest.mark.parametrize(
    ("name", "args", "method"),
    [
        ("approvals:dashboard", [], "get"),
        ("approvals:queue", [], "get"),
        ("approvals:document_new", [], "get"),
        ("approvals:document", [1], "get"),
        ("approvals:document_live", [1], "get"),
        ("approvals:review_decide", [1, 1], "post"),
    ],
)
def test_every_page_asks_anonymous_visitors_to_log_in(client, name, args, method):
    url = reverse(name, args=args)
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_page_logs_a_reviewer_in_and_logout_needs_a_post(client, people):
    response = client.post(reverse("login"), {"username": "reviewer", "password": "pw-reviewer-1"})
    assert response.status_code == 302
    assert response["Location"] == reverse("approvals:dashboard")
    assert client.get(reverse("approvals:queue")).status_code == 200
    assert client.get(reverse("logout")).status_code == 405  # a link cannot log anyone out
    client.post(reverse("logout"))
    assert client.get(reverse("approvals:queue")).status_code == 302
    bad = client.post(reverse("login"), {"username": "reviewer", "password": "wrong"})
    assert bad.status_code == 200
    assert b"did not match" in bad.content


def test_a_user_who_is_not_a_reviewer_is_refused_the_queue_and_the_decision(runner, people):
    document, review = awaiting(runner, people)
    for user in (people["outsider"], people["submitter"]):
        client = client_for(user)
        queue = client.get(reverse("approvals:queue"))
        assert queue.status_code == 403
        assert b"Only reviewers may see the review queue" in queue.content
        decision = client.post(decide_url(document, review), {"decision": "approved"}, **HTMX)
        assert decision.status_code == 403
    review.refresh_from_db()
    document.refresh_from_db()
    assert (review.decision, review.reviewer, document.status) == ("", None, "awaiting_review")
    assert b"Review queue" not in client_for(people["outsider"]).get(reverse("approvals:dashboard")).content


def test_only_the_submitter_and_reviewers_see_a_document(runner, people):
    document, _ = awaiting(runner, people)
    url = reverse("approvals:document", args=[document.pk])
    assert client_for(people["outsider"]).get(url).status_code == 404
    assert client_for(people["outsider"]).get(reverse("approvals:document_live", args=[document.pk])).status_code == 404
    own = client_for(people["submitter"]).get(url)
    assert own.status_code == 200
    assert b"you cannot review your own document" in own.content
    assert b'name="decision"' not in own.content
    reviewer = client_for(people["reviewer"]).get(url)
    assert b'name="decision"' in reviewer.content
    assert b"csrfmiddlewaretoken" in reviewer.content


def test_staff_get_a_link_to_the_admin_and_others_do_not(people):
    assert b'href="/admin/"' in client_for(people["staff"]).get(reverse("approvals:dashboard")).content
    assert b'href="/admin/"' not in client_for(people["reviewer"]).get(reverse("approvals:dashboard")).content


def test_queue_lists_open_reviews_newest_first_without_own_or_expired_documents(runner, people):
    _first, _ = awaiting(runner, people, title="First")
    _second, _ = awaiting(runner, people, title="Second")
    expired, _ = awaiting(runner, people, title="Expired one")
    Document.objects.filter(pk=expired.pk).update(status=DocumentStatus.EXPIRED)
    awaiting(runner, people, title="ReviewersOwnDocument", submitter="reviewer")
    page = client_for(people["reviewer"]).get(reverse("approvals:queue")).content.decode()
    assert page.index("Second") < page.index("First")
    assert "Expired one" not in page
    assert "ReviewersOwnDocument" not in page
    assert "ReviewersOwnDocument" in client_for(people["second"]).get(reverse("approvals:queue")).content.decode()


def test_queue_poll_answers_no_content_until_the_queue_changes(runner, people):
    client = client_for(people["reviewer"])
    _, first_review = awaiting(runner, people, title="First")
    page = client.get(reverse("approvals:queue"))
    version = page.context["version"]
    unchanged = client.get(reverse("approvals:queue"), {"v": version, "shown": str(first_review.pk)}, **HTMX)
    assert unchanged.status_code == 204
    assert unchanged.content == b""
    awaiting(runner, people, title="A new one")
    changed = client.get(reverse("approvals:queue"), {"v": version, "shown": str(first_review.pk)}, **HTMX)
    assert changed.status_code == 200
    body = changed.content.decode()
    assert "A new one" in body
    assert "<html" not in body  # a partial, not a page
    assert 'id="queue"' in body
    assert changed.context["version"] != version


def test_a_row_decided_elsewhere_stays_on_screen_marked_decided(runner, people):
    client = client_for(people["reviewer"])
    document, review = awaiting(runner, people)
    version = client.get(reverse("approvals:queue")).context["version"]
    client_for(people["second"]).post(decide_url(document, review), {"decision": "rejected", "comment": "No."})
    poll = client.get(reverse("approvals:queue"), {"v": version, "shown": str(review.pk)}, **HTMX)
    assert poll.status_code == 200
    assert poll.context["reviews"] == []
    assert [r.pk for r in poll.context["closed"]] == [review.pk]
    assert 'class="closed"' in poll.content.decode()
    assert "by second" in poll.content.decode()


def test_the_unchanged_queue_poll_costs_the_same_few_queries_at_any_queue_size(runner, people):
    client = client_for(people["reviewer"])

    def poll_queries() -> int:
        version = client.get(reverse("approvals:queue")).context["version"]
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("approvals:queue"), {"v": version}, **HTMX).status_code == 204
        return len(queries)

    awaiting(runner, people, title="One")
    small = poll_queries()
    for i in range(15):
        awaiting(runner, people, title=f"More {i}")
    assert poll_queries() == small
    assert small <= 5  # session, user, user and group permissions, the one aggregate


def test_document_live_poll_is_cheap_when_unchanged_and_stops_when_final(runner, people):
    document, review = awaiting(runner, people)
    client = client_for(people["reviewer"])
    live = reverse("approvals:document_live", args=[document.pk])
    page = client.get(reverse("approvals:document", args=[document.pk]))
    version = page.context["version"]
    assert 'hx-trigger="every 1s"' in page.content.decode()
    assert client.get(live, {"v": version}, **HTMX).status_code == 204

    response = client.post(decide_url(document, review), {"decision": "approved", "comment": "Good."}, **HTMX)
    assert response.status_code == 200
    assert "Decision recorded." in response.content.decode()
    # The decision's own answer polls fast until the workflow has moved: the outcome shows at once.
    assert 'hx-trigger="every 0.25s"' in response.content.decode()
    publishing = client.get(live, {"v": version}, **HTMX)
    assert publishing.status_code == 200  # changed, not final yet: keeps polling
    assert publishing.context["document"].status == DocumentStatus.PUBLISHING
    assert 'hx-trigger="every 0.25s"' in publishing.content.decode()  # other viewers too, once they see it

    runner.wait_for_result(str(document.execution_id))
    final = client.get(live, {"v": publishing.context["version"]}, **HTMX)
    assert final.status_code == 286  # htmx swaps this last state and stops polling
    body = final.content.decode()
    assert "Published summary" in body
    assert "hx-trigger" not in body
    assert PublishedSummary.objects.get(document=document).text == review.summary


def test_the_document_page_shows_steps_and_earlier_rounds_with_feedback(runner, people):
    document, review = awaiting(runner, people)
    client = client_for(people["reviewer"])
    client.post(decide_url(document, review), {"decision": "revise", "comment": "Shorter, please."}, **HTMX)
    runner.wait_for_callback(str(document.execution_id))
    page = client.get(reverse("approvals:document", args=[document.pk]))
    body = page.content.decode()
    assert "Summary, round 2" in body
    assert "Earlier rounds" in body
    assert "Shorter, please." in body
    names = [entry.name for entry in page.context["timeline"]]
    assert names[:3] == ["split into parts", "summarize #1", "review #1"]
    assert "summarize #2" in names
    summarize = page.context["timeline"][0]
    assert (summarize.status, summarize.attempt, summarize.depth) == ("SUCCEEDED", 1, 0)
    assert summarize.duration_seconds is not None
    assert any(entry.depth == 1 for entry in page.context["timeline"])  # the callback inside review #1


def test_a_second_decision_gets_a_clear_message_and_changes_nothing(runner, people):
    document, review = awaiting(runner, people)
    first = client_for(people["reviewer"]).post(
        decide_url(document, review), {"decision": "approved", "comment": ""}, **HTMX
    )
    assert first.status_code == 200
    late = client_for(people["second"]).post(
        decide_url(document, review), {"decision": "rejected", "comment": "Too late"}, **HTMX
    )
    assert late.status_code == 409
    assert "already decided" in late.content.decode()
    assert "Nothing was changed." in late.content.decode()
    review.refresh_from_db()
    assert (review.decision, review.reviewer, review.comment) == ("approved", people["reviewer"], "")


def test_a_revision_without_feedback_is_refused_and_keeps_the_review_open(runner, people):
    document, review = awaiting(runner, people)
    response = client_for(people["reviewer"]).post(
        decide_url(document, review), {"decision": "revise", "comment": "  "}, **HTMX
    )
    assert response.status_code == 422  # not 400: django-htmx's debug handler would wipe the page
    assert "needs feedback" in response.content.decode()
    assert 'name="decision"' in response.content.decode()  # the form is still there
    review.refresh_from_db()
    assert review.decision == ""
    bogus = client_for(people["reviewer"]).post(decide_url(document, review), {"decision": "maybe"}, **HTMX)
    assert bogus.status_code == 422
    review.refresh_from_db()
    assert review.decision == ""


def test_deciding_without_javascript_redirects_back_with_a_message(runner, people):
    document, review = awaiting(runner, people)
    client = client_for(people["reviewer"])
    response = client.post(decide_url(document, review), {"decision": "rejected", "comment": "Off topic."}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("approvals:document", args=[document.pk])
    assert "Decision recorded." in response.content.decode()
    again = client.post(decide_url(document, review), {"decision": "approved"}, follow=True)
    assert "already decided" in again.content.decode()


def test_forms_refuse_a_post_without_a_csrf_token_and_change_nothing(runner, people):
    document, review = awaiting(runner, people)
    client = client_for(people["reviewer"], enforce_csrf_checks=True)
    response = client.post(decide_url(document, review), {"decision": "approved"})
    assert response.status_code == 403
    assert b"This form has expired" in response.content
    count = Document.objects.count()
    refused = client.post(reverse("approvals:document_new"), {"title": "x", "text": "y"})
    assert refused.status_code == 403
    assert Document.objects.count() == count
    review.refresh_from_db()
    assert review.decision == ""


def test_user_text_is_escaped_everywhere(runner, people):
    evil = "<script>window.pwned = 1</script><img src=x onerror=alert(1)>"
    document, review = awaiting(runner, people, title=evil, text=f"{evil} {TEXT}")
    client = client_for(people["reviewer"])
    client.post(decide_url(document, review), {"decision": "revise", "comment": evil}, **HTMX)
    runner.wait_for_callback(str(document.execution_id))
    pages = [
        client.get(reverse("approvals:document", args=[document.pk])),
        client.get(reverse("approvals:queue")),
        client.get(reverse("approvals:dashboard")),
    ]
    for page in pages:
        body = page.content.decode()
        assert "<script>window.pwned" not in body
        assert "<img src=x" not in body
        assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in body


def test_submitting_text_starts_the_workflow_and_shows_the_document(people):
    client = client_for(people["submitter"])
    response = client.post(reverse("approvals:document_new"), {"title": "  Harbour  ", "text": TEXT})
    document = Document.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("approvals:document", args=[document.pk])
    assert (document.title, document.text, document.submitter) == ("Harbour", TEXT, people["submitter"])
    assert document.execution_id is not None


def test_submitting_a_markdown_file_uses_its_text(people):
    upload = io.BytesIO("# Notes\n\nThe café opens at nine.".encode())
    upload.name = "notes.md"
    response = client_for(people["submitter"]).post(
        reverse("approvals:document_new"), {"title": "Notes", "file": upload}
    )
    assert response.status_code == 302
    assert Document.objects.get().text == "# Notes\n\nThe café opens at nine."


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": "T", "text": ""}, "has no text"),
        ({"title": "", "text": TEXT}, "This field is required"),
        ({"title": "T", "file": ("notes.pdf", b"%PDF-1.7")}, "Upload a .txt or .md file"),
        ({"title": "T", "file": ("notes.txt", b"\xff\xfe\x00bad")}, "not UTF-8 text"),
        ({"title": "T", "text": TEXT, "file": ("notes.txt", b"other text")}, "not both"),
        ({"title": "T", "text": "x" * 1001}, "larger than 1,000 bytes"),
        ({"title": "T", "file": ("big.txt", b"x" * 1001)}, "larger than 1,000 bytes"),
    ],
)
def test_bad_submissions_get_a_clear_error_and_store_nothing(people, settings, fields, message):
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "MAX_DOCUMENT_BYTES": 1000}
    data = {}
    for key, value in fields.items():
        if isinstance(value, tuple):
            upload = io.BytesIO(value[1])
            upload.name = value[0]
            data[key] = upload
        else:
            data[key] = value
    response = client_for(people["submitter"]).post(reverse("approvals:document_new"), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Document.objects.count() == 0


def test_dashboard_counts_documents_by_status_for_what_the_user_may_see(runner, people):
    awaiting(runner, people, title="Mine one")
    awaiting(runner, people, title="Mine two")
    document_submit(title="Someone else's", text=TEXT, submitter=people["second"])
    Document.objects.filter(title="Mine two").update(status=DocumentStatus.PUBLISHED)

    def counts(user, **params):
        response = client_for(user).get(reverse("approvals:dashboard"), params)
        return {status: n for status, _, n in response.context["counts"]}, response

    mine, _ = counts(people["submitter"])
    assert (mine["awaiting_review"], mine["published"], mine["submitted"]) == (1, 1, 0)
    everything, _ = counts(people["reviewer"])
    assert (everything["awaiting_review"], everything["published"], everything["submitted"]) == (1, 1, 1)
    _, filtered = counts(people["reviewer"], status="published")
    assert [d.title for d in filtered.context["page"].object_list] == ["Mine two"]
    _, outsider = counts(people["outsider"])
    assert outsider.context["total"] == 0
    assert "No documents" in outsider.content.decode()


def test_dashboard_poll_answers_no_content_until_a_document_changes(runner, people, monkeypatch):
    client = client_for(people["submitter"])
    document, _ = awaiting(runner, people)
    page = client.get(reverse("approvals:dashboard"))
    version = page.context["version"]
    assert 'hx-trigger="every 3s"' in page.content.decode()
    assert client.get(reverse("approvals:dashboard"), {"v": version}, **HTMX).status_code == 204
    Document.objects.filter(pk=document.pk).update(
        status=DocumentStatus.PUBLISHED, updated_at=document.updated_at + timedelta(seconds=1)
    )
    changed = client.get(reverse("approvals:dashboard"), {"v": version, "status": "published"}, **HTMX)
    assert changed.status_code == 200
    assert "<html" not in changed.content.decode()
    assert [d.pk for d in changed.context["page"].object_list] == [document.pk]
    assert changed.context["poll_url"] == "/?status=published&page=1"
    monkeypatch.setattr(selectors, "_minute", lambda: 1)  # a minute later the ages are redrawn
    assert client.get(reverse("approvals:dashboard"), {"v": changed.context["version"]}, **HTMX).status_code == 200


def test_error_pages_are_friendly(client, people, settings):
    settings.DEBUG = False
    response = client_for(people["reviewer"]).get("/no/such/page/")
    assert response.status_code == 404
    assert b"Back to the dashboard" in response.content


def _boom(request):
    raise RuntimeError("a bug")


urlpatterns = [path("boom/", _boom)]


@pytest.mark.urls("tests.approvals.test_views")
def test_a_server_error_shows_a_friendly_page_without_details(settings):
    settings.DEBUG = False
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    assert b"Something went wrong" in response.content
    assert b"a bug" not in response.content


def test_demo_setup_creates_the_accounts_and_one_sample_document(monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "admin-pw-123456")
    monkeypatch.setenv("DEMO_REVIEWER_PASSWORD", "reviewer-pw-123456")
    out = io.StringIO()
    call_command("demo_setup", stdout=out)
    call_command("demo_setup", stdout=out)  # a second run updates, and submits no second sample
    users = get_user_model().objects
    admin, reviewer = users.get(username="admin"), users.get(username="reviewer")
    assert admin.is_superuser
    assert admin.check_password("admin-pw-123456")
    assert reviewer.has_perm("approvals.decide_review")
    assert not reviewer.is_staff
    assert reviewer.check_password("reviewer-pw-123456")
    sample = Document.objects.get()
    assert sample.submitter == admin
    assert sample.execution_id is not None
    assert "Submitted the sample document" in out.getvalue()


def test_review_deadline_is_shown_in_the_queue(runner, people):
    _, review = awaiting(runner, people)
    Review.objects.filter(pk=review.pk).update(expires_at=review.created_at + timedelta(days=7))
    body = client_for(people["reviewer"]).get(reverse("approvals:queue")).content.decode()
    assert "until " in body


@pytest.mark.parametrize(
    ("status", "round_number", "expected"),
    [
        ("summarizing", 0, [("Summarizing", "current"), ("Awaiting review", "todo"), ("Publishing", "todo")]),
        ("awaiting_review", 1, [("Summarizing", "done"), ("Awaiting review", "current"), ("Publishing", "todo")]),
        ("revising", 1, [("Revising (round 2)", "current"), ("Awaiting review (round 2)", "todo")]),
        ("awaiting_review", 2, [("Revising (round 2)", "done"), ("Awaiting review (round 2)", "current")]),
        ("publishing", 1, [("Summarizing", "done"), ("Awaiting review", "done"), ("Publishing", "current")]),
        ("published", 1, [("Publishing", "done"), ("Published", "done")]),
        ("rejected", 1, [("Awaiting review", "done"), ("Rejected", "stopped")]),
        ("expired", 1, [("Awaiting review", "done"), ("Expired", "stopped")]),
        ("failed", 0, [("Summarizing: failed", "stopped")]),
    ],
)
def test_the_progress_bar_follows_the_document_status(people, status, round_number, expected):
    document = Document.objects.create(title="T", text=TEXT, submitter=people["submitter"], status=status)
    for number in range(1, round_number + 1):
        decided = number < round_number or status == "revising"
        Review.objects.create(
            document=document,
            round=number,
            summary=f"Summary {number}",
            callback_id=f"cb-{number}",
            decision="revise" if decided else "",
        )
    progress = client_for(people["reviewer"]).get(reverse("approvals:document", args=[document.pk])).context["progress"]
    for item in expected:
        assert item in progress
    assert len([state for _, state in progress if state == "current"]) <= 1
