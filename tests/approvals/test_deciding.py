"""Deciding: the last round says what a revision request does before the click, and feedback
accumulates over the rounds (on the offline summarizer, through the real engine's test runner)."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from approvals import workflows
from approvals.models import Document, Review
from approvals.services import document_submit, review_decide
from durable.testing import DurableTestRunner
from tests.approvals.fixtures import make_people

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
# Twelve sentences; the glacier one is not among the first round's picks.
TEXT = (
    "The valley council met on Tuesday to plan the summer season for the mountain town. "
    "The council agreed to extend the bus service to the upper village during July and August. "
    "Hotel owners asked the council for more parking near the cable car station. "
    "The council approved a new car park with two hundred spaces beside the station. "
    "Tourism in the valley grew by a tenth last year, the council heard. "
    "Shop owners reported strong sales during the winter ski season. "
    "The council voted to fund a new visitor centre in the town square. "
    "Work on the visitor centre starts in spring and ends before the summer season. "
    "Scientists told the council that the glacier above the town lost thirty metres of ice this year. "
    "The council will publish its budget for the season in May. "
    "Residents can comment on the plans at the town hall until the end of April. "
    "The next council meeting is on the first Tuesday of May."
)
GLACIER = "Scientists told the council that the glacier above the town lost thirty metres of ice this year."


@pytest.fixture
def people():
    return make_people()


@pytest.fixture
def runner():
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        yield runner


def review_of(runner, document: Document, round_number: int) -> Review:
    runner.wait_for_callback(str(document.execution_id))
    return Review.objects.get(document=document, round=round_number)


def sentences(summary: str) -> list[str]:
    return [s for s in (part.strip() for part in summary.replace(". ", ".\n").splitlines()) if s]


def test_each_round_honours_the_feedback_of_the_rounds_before_it(people, runner):
    document = document_submit(title="Valley council", text=TEXT, submitter=people["submitter"])
    first = review_of(runner, document, 1)
    assert GLACIER not in first.summary
    review_decide(first, reviewer=people["reviewer"], decision="revise", comment="Shorter, please.")
    second = review_of(runner, document, 2)
    assert len(sentences(second.summary)) < len(sentences(first.summary))
    review_decide(second, reviewer=people["second"], decision="revise", comment="Focus on the glacier.")
    third = review_of(runner, document, 3)
    # Round 3 still honours round 2's "shorter", and round 3's glacier.
    assert GLACIER in third.summary
    assert len(sentences(third.summary)) < len(sentences(first.summary))
    assert len(sentences(third.summary)) == len(sentences(second.summary))


def test_a_reviewer_can_start_over_and_a_later_contradiction_wins(people, runner, settings):
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "MAX_ROUNDS": 4}
    document = document_submit(title="Valley council", text=TEXT, submitter=people["submitter"])
    first = review_of(runner, document, 1)
    review_decide(first, reviewer=people["reviewer"], decision="revise", comment="Shorter, please.")
    second = review_of(runner, document, 2)
    review_decide(second, reviewer=people["reviewer"], decision="revise", comment="Longer: more detail.")
    third = review_of(runner, document, 3)
    assert len(sentences(third.summary)) > len(sentences(second.summary))  # longer after shorter wins
    review_decide(
        third, reviewer=people["reviewer"], decision="revise", comment="Focus on the glacier.", start_over=True
    )
    fourth = review_of(runner, document, 4)
    assert Review.objects.get(pk=third.pk).start_over is True
    assert GLACIER in fourth.summary
    # Only round 4's feedback counts: the first round's length, with the glacier in it.
    assert len(sentences(fourth.summary)) == len(sentences(first.summary))


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_page_says_the_round_and_what_the_last_one_means_before_the_click(people, runner):
    document = document_submit(title="Valley council", text=TEXT, submitter=people["submitter"])
    client = client_for(people["reviewer"])
    page_url = reverse("approvals:document", args=[document.pk])
    for round_number, comment in [(1, "Shorter, please."), (2, "Focus on the glacier.")]:
        review = review_of(runner, document, round_number)
        body = client.get(page_url).content.decode()
        assert f"Round {round_number} of 3" in body
        assert "rejects the document" not in body
        assert "Request revision</button>" in body
        url = reverse("approvals:review_decide", args=[document.pk, review.pk])
        assert client.post(url, {"decision": "revise", "comment": comment}, **HTMX).status_code == 200
    last = review_of(runner, document, 3)
    body = client.get(page_url).content.decode()
    assert "Round 3 of 3: the last round" in body
    assert "Request revision (rejects: last round)" in body
    assert "a revision request now <strong>rejects the document</strong>" in body

    # The click asks first: nothing is decided, the feedback is carried into the confirmation.
    url = reverse("approvals:review_decide", args=[document.pk, last.pk])
    asked = client.post(url, {"decision": "revise", "comment": "Mention the ski season."}, **HTMX)
    assert asked.status_code == 200
    text = asked.content.decode()
    assert "Reject the document?" in text
    assert "Reject with this feedback" in text
    assert "Mention the ski season." in text
    last.refresh_from_db()
    assert last.is_open

    confirmed = client.post(
        url, {"decision": "revise", "comment": "Mention the ski season.", "confirm_last_round": "1"}, **HTMX
    )
    assert confirmed.status_code == 200
    result = runner.wait_for_result(str(document.execution_id))
    assert json.loads(result.result)["status"] == "rejected"
    document.refresh_from_db()
    last.refresh_from_db()
    # The feedback is kept on the review and shown with the outcome.
    assert (last.decision, last.comment) == ("revise", "Mention the ski season.")
    assert document.status_detail == "still not approved after 3 rounds; the last feedback: “Mention the ski season.”"
    body = client.get(page_url).content.decode()
    assert "asked for a revision at the last round (3 of 3), so the document was rejected" in body
    assert "Their feedback, kept with the outcome: “Mention the ski season.”" in body


def test_without_javascript_the_last_round_asks_for_confirmation_too(people, runner, settings):
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "MAX_ROUNDS": 1}
    document = document_submit(title="Valley council", text=TEXT, submitter=people["submitter"])
    review = review_of(runner, document, 1)
    client = client_for(people["reviewer"])
    url = reverse("approvals:review_decide", args=[document.pk, review.pk])
    page = client.post(url, {"decision": "revise", "comment": "Shorter."})
    assert page.status_code == 200
    assert "Reject the document?" in page.content.decode()
    review.refresh_from_db()
    assert review.is_open
