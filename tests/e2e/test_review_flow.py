"""Reviewers in a real browser, with a real worker process running the workflow behind them."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from approvals.models import Document, PublishedSummary, Review
from approvals.services import document_submit
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.processes]

TEXT = (
    "The river trust will open a new footbridge at Mill Lane in April. The bridge replaces a ferry "
    "that ran for forty years. Cyclists and walkers can cross day and night. The trust paid for most "
    "of the work with a national grant. Local schools helped choose the name of the bridge. "
    "A small museum about the old ferry will open on the east bank in the summer."
)


def submit(people, title: str = "Mill Lane footbridge", text: str = TEXT) -> Document:
    return document_submit(title=title, text=text, submitter=people["submitter"])


def open_document(page: Page, title: str) -> None:
    page.goto("/queue/")
    page.locator("#queue").get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title)).to_be_visible()


def expect_status(page: Page, label: str) -> None:
    expect(page.locator("#status")).to_have_text(re.compile(rf"^\s*{re.escape(label)}\s*$", re.IGNORECASE))


def test_a_new_document_appears_live_and_an_approval_reaches_published(login, people):
    page = login("alice")
    page.get_by_role("link", name="Review queue", exact=True).click()
    expect(page.get_by_text("Nothing is waiting for a decision")).to_be_visible()
    page.evaluate("window.__noReload = 'still the same page'")

    document = submit(people)
    row = page.locator("#queue tr[data-review]", has_text="Mill Lane footbridge")
    expect(row).to_be_visible()  # arrives by polling, after the worker summarized it
    expect(row).to_contain_text("submitter")
    assert page.evaluate("window.__noReload") == "still the same page"
    assert page.url.endswith("/queue/")
    screenshot(page, "queue")

    row.get_by_role("link", name="Mill Lane footbridge").click()
    summary = page.locator("#current-summary .prose")
    expect(summary).not_to_be_empty()
    review = Review.objects.get(document=document, round=1)
    expect(summary).to_contain_text(review.summary.split(". ")[0])
    expect(page.locator("#live .progress li.current")).to_have_text("Awaiting review")
    page.get_by_role("button", name="Approve").click()

    expect_status(page, "published")
    expect(page.get_by_role("heading", name="Published summary")).to_be_visible()
    expect(page.locator("#live .progress li.done").last).to_have_text("Published")
    expect(page.locator("#live .timeline")).to_have_count(0)  # engine steps are for staff only
    screenshot(page, "document-published")
    published = PublishedSummary.objects.get(document=document)
    assert (published.text, published.reviewer.username) == (review.summary, "alice")


def tab_to(page: Page, accessible_name: str, presses: int = 40) -> None:
    """Press Tab until the focused element has this accessible name (or label)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement;"
            " return (e.labels && e.labels[0] ? e.labels[0].textContent : e.textContent || '').trim(); }"
        )
        if focused.startswith(accessible_name):
            return
    raise AssertionError(f"Tab never reached {accessible_name!r}")


def test_reject_path_with_the_keyboard_only(login, people):
    document = submit(people, title="Rejected plan")
    page = login("bob")
    expect(page.locator("#queue")).to_have_count(0)  # the dashboard, not the queue
    open_document(page, "Rejected plan")
    expect(page.get_by_role("button", name="Reject")).to_be_visible()
    tab_to(page, "Comment")
    page.keyboard.type("Not ours to publish.")
    tab_to(page, "Reject")
    page.keyboard.press("Enter")
    expect_status(page, "rejected")
    expect(page.locator("#live")).to_contain_text("Not ours to publish.")
    document.refresh_from_db()
    assert document.status == "rejected"
    assert not PublishedSummary.objects.filter(document=document).exists()


def test_revision_path_feedback_gives_a_new_summary_then_approval_publishes_it(login, people):
    document = submit(people, title="Footbridge, revised")
    page = login("alice")
    open_document(page, "Footbridge, revised")
    first = Review.objects.get(document=document, round=1)
    page.get_by_label("Comment").fill("Shorter please: one sentence about the museum.")
    page.get_by_role("button", name="Request revision").click()

    expect(page.get_by_role("heading", name="Summary, round 2")).to_be_visible()  # live, no reload
    expect(page.locator("#live")).to_contain_text("Earlier rounds")
    page.locator("#live details summary", has_text=re.compile(r"^Round 1")).click()
    expect(page.locator("#live details .feedback")).to_contain_text("one sentence about the museum")
    second = Review.objects.get(document=document, round=2)
    assert second.summary != first.summary
    assert "museum" in second.summary.lower()
    expect(page.locator("#current-summary .prose")).to_contain_text(second.summary.split(". ")[0])
    screenshot(page, "document-round-2")

    page.get_by_role("button", name="Approve").click()
    expect_status(page, "published")
    assert PublishedSummary.objects.get(document=document).text == second.summary


def test_a_second_reviewer_deciding_the_same_review_is_told_and_nothing_changes(login, people):
    document = submit(people, title="Contested")
    alice = login("alice")
    bob = login("bob")
    open_document(alice, "Contested")
    open_document(bob, "Contested")
    # Bob's page stays as it was when he opened it (his polls see no change) until he acts.
    bob.route(re.compile(r".*/live/.*"), lambda route: route.fulfill(status=204))

    alice.get_by_role("button", name="Approve").click()
    expect(alice.locator("#live")).to_contain_text("Decision recorded.")
    bob.get_by_label("Comment").fill("I disagree")
    bob.get_by_role("button", name="Reject").click()

    expect(bob.get_by_role("alert")).to_contain_text("already decided")
    expect(bob.get_by_role("alert")).to_contain_text("Nothing was changed.")
    bob.unroute(re.compile(r".*/live/.*"))
    expect_status(alice, "published")
    review = Review.objects.get(document=document, round=1)
    assert (review.decision, review.reviewer.username, review.comment) == ("approved", "alice", "")
    document.refresh_from_db()
    assert document.status == "published"


def test_a_user_who_is_not_a_reviewer_is_refused_the_queue_and_the_decision(login, people):
    document = submit(people, title="Not for outsiders")
    page = login("submitter")
    expect(page.get_by_role("link", name="Review queue", exact=True)).to_have_count(0)
    response = page.goto("/queue/")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", name="You can't do that")).to_be_visible()

    page.goto(f"/documents/{document.pk}/")
    expect_status(page, "awaiting review")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.locator("#live")).to_contain_text("you cannot review your own document")
    review = Review.objects.get(document=document, round=1)
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    forged = page.request.post(
        f"/documents/{document.pk}/reviews/{review.pk}/decide/",
        form={"decision": "approved", "csrfmiddlewaretoken": token},
        headers={"X-CSRFToken": token},
    )
    assert forged.status == 403

    outsider = login("outsider")
    assert outsider.goto(f"/documents/{document.pk}/").status == 404
    review.refresh_from_db()
    document.refresh_from_db()
    assert (review.decision, document.status) == ("", "awaiting_review")


def test_a_script_in_the_document_shows_as_text(login, people):
    evil = "<script>window.__pwned = 1</script>"
    submit(people, title=f"Evil {evil}", text=f"{evil} {TEXT}")
    page = login("alice")
    open_document(page, f"Evil {evil}")
    expect(page.locator(".document-text")).to_contain_text(evil)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Evil {evil}")
    assert page.evaluate("window.__pwned") is None
    page.goto("/")
    expect(page.locator("table.rows")).to_contain_text(evil)
    assert page.evaluate("window.__pwned") is None


def test_submitting_from_the_browser_on_a_narrow_screen(login, people, tmp_path):
    page = login("submitter", width=375, height=800)
    page.get_by_role("link", name="Submit").first.click()
    page.get_by_label("Title").fill("From a phone")
    upload = tmp_path / "notes.md"
    upload.write_text(TEXT, encoding="utf-8")
    page.get_by_label("File").set_input_files(str(upload))
    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_role("heading", name="From a phone")).to_be_visible()
    expect_status(page, "awaiting review")  # summarized by the worker, shown live
    expect(page.locator("#current-summary .prose")).not_to_be_empty()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone ({width}px wide)"
    screenshot(page, "document-narrow")
    assert Document.objects.get(title="From a phone").text == TEXT


def test_with_debug_on_a_refused_decision_shows_its_error_inline(login, people, settings):
    """`make run` has DEBUG on, which loads django-htmx's debug handler: it replaces the whole
    page with any 400/403/404/500 answer. A refused decision must still show inline."""
    settings.DEBUG = True
    document = submit(people, title="Debug mode")
    page = login("alice")
    open_document(page, "Debug mode")
    expect(page.locator('script[src*="django-htmx.js"][data-debug="True"]')).to_have_count(1)
    page.get_by_role("button", name="Request revision").click()  # no comment: refused
    expect(page.get_by_role("alert")).to_contain_text("needs feedback")
    expect(page.get_by_role("heading", name="Debug mode")).to_be_visible()  # the page is still whole
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_be_visible()
    screenshot(page, "document-refused-in-debug-mode")
    assert Review.objects.get(document=document).decision == ""
