"""summarize_approve_persist, every path, on the time-skipping runner over the real engine."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

import llm
from approvals import workflows
from approvals.apps import REVIEWERS_GROUP
from approvals.errors import (
    InvalidDecisionError,
    ReviewAlreadyDecidedError,
    ReviewerIsSubmitterError,
    ReviewExpiredError,
)
from approvals.models import Document, PublishedSummary, Review
from approvals.services import document_submit, review_decide
from durable.client import send_callback_success
from durable.models import Execution, Operation
from durable.store import sql as journal_sql
from durable.testing import DurableTestRunner
from llm.errors import AuthenticationError, RateLimitedError
from tests.durable.helpers import Crash, crash_then_expire_lease

pytestmark = pytest.mark.django_db

TEXT = (
    "The city council approved a new budget for public libraries. The budget adds evening hours at "
    "four branches. Librarians asked for more staff to cover the longer hours. The council agreed to "
    "hire six people. The changes start next spring. Residents can comment on the plan until March."
)


@pytest.fixture
def people():
    users = get_user_model().objects
    reviewers = Group.objects.get(name=REVIEWERS_GROUP)
    people = {
        "submitter": users.create_user("submitter", password="pw-submitter-1"),
        "reviewer": users.create_user("reviewer", password="pw-reviewer-1"),
        "second": users.create_user("second", password="pw-second-1"),
    }
    reviewers.user_set.add(people["reviewer"], people["second"])
    return people


@pytest.fixture
def runner():
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        yield runner


def submit(people) -> Document:
    return document_submit(title="Library budget", text=TEXT, submitter=people["submitter"])


def open_review(runner, document: Document, round_number: int) -> Review:
    runner.wait_for_callback(str(document.execution_id))
    review = Review.objects.get(document=document, round=round_number)
    document.refresh_from_db()
    assert document.status == "awaiting_review"
    return review


def finish(runner, document: Document):
    result = runner.wait_for_result(str(document.execution_id))
    document.refresh_from_db()
    return result


def test_approved_summary_is_published_once(people, runner):
    document = submit(people)
    review = open_review(runner, document, 1)
    assert review.summary
    assert all(sentence in TEXT for sentence in review.summary.split(". "))  # offline: extractive
    review_decide(review, reviewer=people["reviewer"], decision="approved", comment="Clear.")
    document.refresh_from_db()
    assert document.status == "publishing"
    result = finish(runner, document)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.result)["status"] == "published"
    assert document.status == "published"
    published = PublishedSummary.objects.get(document=document)
    assert (published.text, published.reviewer) == (review.summary, people["reviewer"])


def test_rejected_summary_is_recorded(people, runner):
    document = submit(people)
    review = open_review(runner, document, 1)
    review_decide(review, reviewer=people["reviewer"], decision="rejected", comment="Off topic.")
    result = finish(runner, document)
    assert json.loads(result.result)["status"] == "rejected"
    assert (document.status, document.status_detail) == ("rejected", "Off topic.")
    assert not PublishedSummary.objects.exists()


def test_revised_twice_then_approved(people, runner, monkeypatch):
    seen_feedback, seen_titles = [], []
    real = llm.summarize

    def recording(text, *, title=None, instructions=None, feedback=None):
        seen_feedback.append(feedback)
        seen_titles.append(title)
        return real(text, title=title, instructions=instructions, feedback=feedback)

    monkeypatch.setattr(llm, "summarize", recording)
    document = submit(people)
    first = open_review(runner, document, 1)
    review_decide(first, reviewer=people["reviewer"], decision="revise", comment="Shorter, please.")
    second = open_review(runner, document, 2)
    review_decide(second, reviewer=people["second"], decision="revise", comment="Mention the staff.")
    third = open_review(runner, document, 3)
    assert "staff" in third.summary
    review_decide(third, reviewer=people["reviewer"], decision="approved")
    result = finish(runner, document)
    assert json.loads(result.result) == {
        "document_id": document.pk,
        "status": "published",
        "rounds": 3,
        "published_summary_id": PublishedSummary.objects.get().pk,
    }
    # Each round honours every earlier round's feedback, oldest first.
    assert seen_feedback == [None, ["Shorter, please."], ["Shorter, please.", "Mention the staff."]]
    assert seen_titles == [document.title] * 3
    assert PublishedSummary.objects.get().text == third.summary


def test_a_review_without_a_decision_expires(people, runner, settings):
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "REVIEW_TIMEOUT_SECONDS": 3600}
    document = submit(people)
    review = open_review(runner, document, 1)
    result = finish(runner, document)  # the runner skips the hour
    assert json.loads(result.result)["status"] == "expired"
    assert document.status == "expired"
    with pytest.raises(ReviewExpiredError):
        review_decide(review, reviewer=people["reviewer"], decision="approved")
    review.refresh_from_db()
    assert review.decision == ""


def test_a_transient_summarizer_failure_is_retried(people, runner, monkeypatch):
    calls = []
    real = llm.summarize

    def flaky(text, **kwargs):
        calls.append(1)
        if len(calls) < 3:
            raise RateLimitedError("429 from the provider", provider="fake")
        return real(text, **kwargs)

    monkeypatch.setattr(llm, "summarize", flaky)
    document = submit(people)
    open_review(runner, document, 1)
    step = Operation.objects.get(execution_id=document.execution_id, name="summarize #1")
    assert (step.status, step.attempt) == ("SUCCEEDED", 3)
    assert len(calls) == 3


def test_a_permanent_summarizer_failure_fails_the_document(people, runner, monkeypatch):
    def denied(text, **kwargs):
        raise AuthenticationError("invalid API key", provider="fake")

    monkeypatch.setattr(llm, "summarize", denied)
    document = submit(people)
    result = finish(runner, document)
    assert result.status == "FAILED"
    assert document.status == "failed"
    assert "invalid API key" in document.status_detail
    step = result.get_step("summarize #1")
    assert step.attempt == 1  # not retried


def test_publish_happens_exactly_once_when_the_worker_dies_before_its_checkpoint(people, monkeypatch):
    real = journal_sql.checkpoint_rows  # every journal write builds its statements with it
    crashed = []

    def crash_on_publish(execution_id, checkpoints):
        if not crashed and any(c.record.name == "publish" and c.record.status == "SUCCEEDED" for c in checkpoints):
            crashed.append(True)
            raise Crash  # the body wrote the summary; the process dies before the checkpoint commits
        return real(execution_id, checkpoints)

    monkeypatch.setattr(journal_sql, "checkpoint_rows", crash_on_publish)
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document = submit(people)
        review = open_review(runner, document, 1)
        review_decide(review, reviewer=people["reviewer"], decision="approved")
        crash_then_expire_lease(runner, str(document.execution_id))
        assert not PublishedSummary.objects.exists()  # rolled back with the dead transaction
        result = finish(runner, document)
    assert crashed
    assert result.status == "SUCCEEDED"
    assert PublishedSummary.objects.filter(document=document).count() == 1
    assert document.status == "published"


def test_deciding_twice_changes_nothing(people, runner):
    document = submit(people)
    review = open_review(runner, document, 1)
    review_decide(review, reviewer=people["reviewer"], decision="rejected", comment="No.")
    with pytest.raises(ReviewAlreadyDecidedError):
        review_decide(review, reviewer=people["second"], decision="approved")
    review.refresh_from_db()
    assert (review.decision, review.reviewer) == ("rejected", people["reviewer"])


def test_submitters_cannot_review_their_own_documents(people, runner):
    document = submit(people)
    review = open_review(runner, document, 1)
    Group.objects.get(name=REVIEWERS_GROUP).user_set.add(people["submitter"])  # a reviewer who submitted
    with pytest.raises(ReviewerIsSubmitterError):
        review_decide(review, reviewer=people["submitter"], decision="approved")
    review.refresh_from_db()
    assert review.decision == ""
    assert Execution.objects.get(pk=document.execution_id).status == "RUNNING"


def test_bad_decisions_are_refused(people, runner):
    document = submit(people)
    review = open_review(runner, document, 1)
    with pytest.raises(InvalidDecisionError):
        review_decide(review, reviewer=people["reviewer"], decision="maybe")
    with pytest.raises(InvalidDecisionError, match="feedback"):
        review_decide(review, reviewer=people["reviewer"], decision="revise", comment="  ")
    review.refresh_from_db()
    assert review.decision == ""


def test_too_many_revisions_end_in_rejection(people, runner, settings):
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "MAX_ROUNDS": 2}
    document = submit(people)
    for round_number in (1, 2):
        review = open_review(runner, document, round_number)
        review_decide(review, reviewer=people["reviewer"], decision="revise", comment="Try again.")
    result = finish(runner, document)
    assert json.loads(result.result) == {"document_id": document.pk, "status": "rejected", "rounds": 2}
    assert "after 2 rounds" in document.status_detail


def test_submit_document_command(people, tmp_path):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    path = tmp_path / "note.md"
    path.write_text(TEXT, encoding="utf-8")
    out = StringIO()
    call_command("submit_document", str(path), "--user", "submitter", stdout=out)
    document = Document.objects.get()
    assert (document.title, document.text) == ("note", TEXT)
    assert f"Submitted document {document.pk}" in out.getvalue()
    empty = tmp_path / "empty.txt"
    empty.write_text("   ", encoding="utf-8")
    with pytest.raises(CommandError, match="empty"):
        call_command("submit_document", str(empty), "--user", "submitter")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"text\x00more text")
    with pytest.raises(CommandError, match="NUL"):
        call_command("submit_document", str(binary), "--user", "submitter")
    assert Document.objects.count() == 1


def test_a_callback_completed_by_hand_decides_nothing_and_reopens_the_review(people, runner):
    """Completing the review's callback around the product (the admin's "complete callback", or
    the engine's client) carries no reviewer: the workflow does not take it as a decision."""
    document = submit(people)
    review = open_review(runner, document, 1)
    send_callback_success(review.callback_id, json.dumps({"decision": "approved", "comment": "By hand."}))
    runner.wait_for_callback(str(document.execution_id))
    review.refresh_from_db()
    document.refresh_from_db()
    assert (review.decision, review.reviewer) == ("", None)
    assert document.status == "awaiting_review"
    assert "no reviewer made it" in document.status_detail
    assert not PublishedSummary.objects.exists()
    review_decide(review, reviewer=people["reviewer"], decision="approved", comment="Fine.")
    assert json.loads(finish(runner, document).result)["status"] == "published"
    published = PublishedSummary.objects.get(document=document)
    assert (published.review, published.reviewer) == (review, people["reviewer"])


def test_the_published_review_is_the_rounds_not_one_the_payload_names(people, runner):
    """Round 1 was sent back for revision; a payload naming round 1's review on round 2's
    callback must not publish round 1's summary."""
    document = submit(people)
    first = open_review(runner, document, 1)
    review_decide(first, reviewer=people["reviewer"], decision="revise", comment="Shorter.")
    second = open_review(runner, document, 2)
    assert second.summary != first.summary
    forged = {"decision": "approved", "comment": "", "review_id": first.pk, "reviewer_id": people["reviewer"].pk}
    send_callback_success(second.callback_id, json.dumps(forged))  # around the product
    runner.wait_for_callback(str(document.execution_id))
    assert not PublishedSummary.objects.exists()
    review_decide(Review.objects.get(pk=second.pk), reviewer=people["second"], decision="approved")
    assert json.loads(finish(runner, document).result)["status"] == "published"
    published = PublishedSummary.objects.get(document=document)
    assert (published.review_id, published.text) == (second.pk, second.summary)


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        ("yes please", "the result was not JSON"),
        ('"approved"', "expected a JSON object, got str"),
        ('{"decision": "maybe"}', "decision must be one of"),
        ('{"decision": "revise", "comment": " "}', "a revision request needs a comment"),
        ('{"decision": "approved", "comment": 5}', "comment must be a string"),
    ],
)
def test_a_decision_that_cannot_be_used_reopens_the_review_and_loses_nothing(people, runner, result, problem):
    document = submit(people)
    review = open_review(runner, document, 1)
    send_callback_success(review.callback_id, result)
    runner.wait_for_callback(str(document.execution_id))  # the review is open again, under a new callback
    reopened = Review.objects.get(document=document, round=1)
    document.refresh_from_db()
    assert reopened.pk == review.pk
    assert reopened.callback_id != review.callback_id
    assert reopened.decision == ""
    assert document.status == "awaiting_review"
    assert problem in document.status_detail
    assert Execution.objects.get(pk=document.execution_id).status == "RUNNING"

    review_decide(reopened, reviewer=people["reviewer"], decision="approved")
    assert json.loads(finish(runner, document).result)["status"] == "published"
    assert document.status_detail == ""
    names = list(Operation.objects.filter(execution_id=document.execution_id).values_list("name", flat=True))
    assert "review #1 (again, 1)" in names
