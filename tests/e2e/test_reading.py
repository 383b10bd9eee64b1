"""Reading a document in real Chromium: the summary beside its source (stacked on a phone) with
sentences linked both ways, dates in the reader's zone, the outcome of a decision shown at once
(approve-to-published measured), and the looks at 375 and 1280 px: pill badges, a deadline that
is not a narrow column, step labels in line, no file input overflow, progress chips on one line,
"Published summaries" in the admin. Screenshots go to var/screenshots/."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from approvals.models import Document, PublishedSummary, Review
from approvals.services import document_submit, review_decide

pytestmark = [pytest.mark.e2e, pytest.mark.processes]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
TEXT = (
    "Riverside council met on Monday evening in the town hall.\n"
    "The weather on Monday was mild.\n\n"
    "The council voted seven to two to close the Riverside public library at the end of June. "
    "The building will be sold next year and the money spent on the new leisure centre. "
    "Residents protested outside the hall before the vote.\n\n"
    "Councillor Shah said the library had lost half its visitors in five years. "
    "A mobile library van will visit Riverside twice a week from July. "
    "The next meeting is in March."
)
PUBLISHED = "() => document.querySelector('#status').textContent.trim() === 'published'"
NO_OVERFLOW = "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def awaiting(people, title: str = "Riverside library to close") -> Document:
    document = document_submit(title=title, text=TEXT, submitter=people["submitter"])
    deadline = time.monotonic() + 30
    while not Review.objects.filter(document=document).exists():
        assert time.monotonic() < deadline, "the worker never summarized the document"
        time.sleep(0.05)
    return document


def box(page: Page, selector: str) -> dict:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


@pytest.mark.parametrize("width", [1280, 375])
def test_the_summary_sits_beside_its_source_and_sentences_link_both_ways(login, people, width):
    document = awaiting(people)
    page = login("alice", width=width, timezone="America/New_York")
    page.goto(f"/documents/{document.pk}/")
    summary, source = box(page, "#current-summary"), box(page, "#source")
    if width >= 900:  # side by side, tops level
        assert source["x"] >= summary["x"] + summary["width"] - 1
        assert abs(source["y"] - summary["y"]) < 2
    else:  # stacked, full width
        assert source["y"] >= summary["y"] + summary["height"] - 1
        assert abs(source["width"] - summary["width"]) < 2
    assert page.evaluate(NO_OVERFLOW)
    marks = page.locator("#source mark.src-sentence")
    review = Review.objects.get(document=document, round=1)
    assert " ".join(marks.all_text_contents()) == review.summary  # exactly the sentences taken

    # Keyboard only: Tab to the first summary sentence's marker, Enter jumps to its source sentence.
    first_cite = page.locator("#current-summary a.cite").first
    target = first_cite.get_attribute("href")
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('cite')"):
            break
    assert page.evaluate("document.activeElement.getAttribute('href')") == target
    page.keyboard.press("Enter")
    expect(page.locator(f"mark{target}:target")).to_have_count(1)
    expect(page.locator(target)).to_be_in_viewport()
    # ... and its marker leads back to the summary sentence.
    back = page.locator(f"{target} + a.cite.back")
    back.focus()
    page.keyboard.press("Enter")
    expect(page.locator(".sum-sentence:target")).to_have_count(1)

    # The date carries its year and the reader's zone, rewritten in the browser.
    expect(page.locator(".page-head time[data-local]")).to_have_text(re.compile(r"20\d\d.*(EST|EDT|GMT-[45])"))
    shot(page, f"reading-{width}")


def test_the_changes_between_rounds_are_marked_words(login, people):
    document = awaiting(people, title="Library, revised")
    review_decide(
        Review.objects.get(document=document, round=1),
        reviewer=people["bob"],
        decision="revise",
        comment="Shorter please, only the vote.",
    )
    page = login("alice")
    page.goto(f"/documents/{document.pk}/")
    expect(page.get_by_role("heading", name="Summary, round 2")).to_be_visible()
    page.get_by_text("Changes from round 1").click()
    expect(page.locator("#round-changes del").first).to_be_visible()
    expect(page.locator("#round-changes del .sr-only").first).to_have_text("removed: ")
    shot(page, "reading-changes-1280")


def test_the_deciding_page_sees_published_at_once_and_another_viewer_within_two_seconds(login, people):
    document = awaiting(people, title="Quick outcome")
    alice = login("alice")
    bob = login("bob")
    alice.goto(f"/documents/{document.pk}/")
    bob.goto(f"/documents/{document.pk}/")
    expect(bob.locator("#status")).to_have_text("awaiting review")
    started = time.monotonic()
    alice.get_by_role("button", name="Approve").click()
    # Checked on every animation frame (expect() backs off to 1 s between its checks).
    alice.wait_for_function(PUBLISHED, polling="raf", timeout=10_000)
    deciding = time.monotonic() - started
    bob.wait_for_function(PUBLISHED, polling="raf", timeout=10_000)
    other = time.monotonic() - started
    published = PublishedSummary.objects.get(document=document)
    server = (published.published_at - published.review.decided_at).total_seconds()
    print(f"\napprove-to-published: deciding page {deciding:.2f} s, other viewer {other:.2f} s, server {server:.2f} s")
    shot(alice, "reading-published-1280")
    assert deciding < 1.0, f"the deciding page waited {deciding:.2f} s for the outcome"
    assert other < 2.5, f"another viewer waited {other:.2f} s for the outcome"


def _rounds(people, n: int, title: str) -> Document:
    document = awaiting(people, title=title)
    for round_number in range(1, n):
        review = Review.objects.get(document=document, round=round_number)
        review_decide(review, reviewer=people["bob"], decision="revise", comment=f"Round {round_number}: tighter.")
        deadline = time.monotonic() + 30
        while not Review.objects.filter(document=document, round=round_number + 1).exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    return document


def test_looks_at_1280_the_round_3_chip_keeps_to_one_line(login, people):
    document = _rounds(people, 3, "Three rounds")
    page = login("alice")
    page.goto(f"/documents/{document.pk}/")
    chip = page.locator("#live .progress li", has_text="Awaiting review (round 3)")
    expect(chip).to_be_visible()
    first = box(page, "#live .progress li")
    found = chip.bounding_box()
    assert found is not None
    assert abs(found["height"] - first["height"]) < 1, "the chip wraps onto a second line"
    assert abs(found["y"] - first["y"]) < 1, "the chips do not fit one row at 1280 px"
    assert page.evaluate(NO_OVERFLOW)
    shot(page, "looks-round-3-1280")


def test_looks_at_375_badges_deadlines_steps_and_the_file_input(login, people):
    people["alice"].is_staff = True
    people["alice"].save(update_fields=["is_staff"])
    document = awaiting(people, title="A long title for a narrow queue row on a phone screen")
    page = login("alice", width=375, height=800)
    page.goto("/queue/")
    row = page.locator("#queue tr[data-review]").first
    expect(row).to_be_visible()
    badge = row.locator(".badge").bounding_box()
    assert badge is not None
    assert badge["height"] < 26, f"the badge is {badge['height']} px tall: an oval, not a pill"
    assert badge["width"] > 2 * badge["height"]
    deadline = row.locator(".deadline").bounding_box()
    assert deadline is not None
    assert deadline["width"] > 150, f"the deadline is a {deadline['width']} px column"
    expect(row.locator("[data-label=Waiting]")).to_have_text(re.compile(r"^(under a minute|\d+\s\w+)$"))
    assert page.evaluate(NO_OVERFLOW)
    shot(page, "looks-queue-375")

    # Engine steps (staff): a nested row's label starts where every label does; its name is indented.
    page.goto(f"/documents/{document.pk}/")
    page.get_by_text("Engine steps").click()
    cells = page.locator("#engine-steps td[data-label=Step]")
    lefts = {round(c.bounding_box()["x"]) for c in cells.all()}
    assert len(lefts) == 1, f"step rows start at {lefts}"
    nested = page.locator("#engine-steps td.depth-1 .step-name").first.bounding_box()
    top = page.locator("#engine-steps td.depth-0 .step-name").first.bounding_box()
    assert nested is not None
    assert top is not None
    assert nested["x"] > top["x"]
    assert page.evaluate(NO_OVERFLOW)
    shot(page, "looks-document-375")

    page.goto("/documents/new/")
    file_input, title = box(page, "input[type=file]"), box(page, "input[name=title]")
    assert file_input["x"] + file_input["width"] <= title["x"] + title["width"] + 0.5  # within the form
    assert page.evaluate(
        "() => { const c = document.querySelector('main .card'); return c.scrollWidth <= c.clientWidth; }"
    )
    assert page.evaluate(NO_OVERFLOW)
    shot(page, "looks-submit-375")


def test_the_admin_says_published_summaries(login, people):
    people["alice"].is_staff = people["alice"].is_superuser = True
    people["alice"].save(update_fields=["is_staff", "is_superuser"])
    page = login("alice")
    page.goto("/admin/")
    expect(page.get_by_role("link", name="Published summaries")).to_be_visible()
    expect(page.get_by_text("Published summarys")).to_have_count(0)
