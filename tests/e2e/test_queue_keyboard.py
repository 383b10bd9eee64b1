"""Issue 18 in a real browser: the queue's search and sort, claims, the history, and a reviewer
working through the queue with the keyboard only (shortcuts, help, the next document)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from approvals import services
from approvals.models import AuditEntry, Document, Review
from approvals.services import document_submit

pytestmark = [pytest.mark.e2e, pytest.mark.processes]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
TEXT = (
    "The river trust will open a new footbridge at Mill Lane in April. The bridge replaces a ferry "
    "that ran for forty years. Cyclists and walkers can cross day and night. The trust paid for most "
    "of the work with a national grant. Local schools helped choose the name of the bridge."
)
OTHER = (
    "The council will close the Riverside library for repairs in June. Readers can use the mobile "
    "library on Tuesdays. The roof leaks and the heating is forty years old. The work costs two "
    "million pounds. The library reopens in the spring with a new children's room."
)


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def submit(people, title: str, text: str) -> Document:
    return document_submit(title=title, text=text, submitter=people["submitter"])


def focused_text(page: Page) -> str:
    return page.evaluate("() => (document.activeElement.textContent || '').trim()")


def announced(page: Page) -> object:
    return expect(page.locator("#key-announcer"))


def keys_ready(page: Page) -> None:
    """The page's deferred shortcuts script has run (it marks <html data-keys="on">)."""
    expect(page.locator("html[data-keys=on]")).to_have_count(1)


def wait_for_queue(page: Page, count: int) -> None:
    page.goto("/queue/")
    expect(page.locator("#queue tr.open")).to_have_count(count)
    keys_ready(page)


def test_working_through_the_queue_with_the_keyboard_only(login, people):
    first = submit(people, "Mill Lane footbridge", TEXT)
    second = submit(people, "Riverside library closes", OTHER)
    page = login("alice")
    wait_for_queue(page, 2)
    expect(page).to_have_title("Review queue (2 open) · Durable approvals")

    # ? opens the help, Escape closes it.
    page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_be_visible()
    shot(page, "queue-shortcuts-help-1280")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()

    # Oldest first, then j/k move between rows, announced.
    page.keyboard.press("/")
    page.keyboard.type("j k a")  # typed into the search field: no shortcut fires
    assert page.evaluate("document.activeElement.id") == "queue-q"
    page.keyboard.press("Control+a")
    page.keyboard.press("Backspace")
    page.keyboard.press("Tab")  # to the order select
    page.keyboard.press("ArrowDown")  # "Oldest first": the list follows at once (htmx)
    expect(page).to_have_url(re.compile(r"order=oldest"))
    expect(page.locator("#queue tr.open").first).to_contain_text("Mill Lane footbridge")
    page.locator("body").press("Escape")  # nothing: a harmless key
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("j")
    assert focused_text(page) == "Mill Lane footbridge"
    announced(page).to_contain_text("Mill Lane footbridge, 1 of 2")
    page.keyboard.press("j")
    assert focused_text(page) == "Riverside library closes"
    page.keyboard.press("k")
    assert focused_text(page) == "Mill Lane footbridge"
    shot(page, "queue-keyboard-1280")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Mill Lane footbridge", level=1)).to_be_visible()
    keys_ready(page)

    # c focuses the comment; keys typed there are text, not shortcuts.
    page.keyboard.press("c")
    assert page.evaluate("document.activeElement.id") == "id_comment"
    page.keyboard.type("a r v j k")
    expect(page.locator("#id_comment")).to_have_value("a r v j k")
    assert Review.objects.get(document=first).decision == ""
    page.keyboard.press("Control+a")
    page.keyboard.press("Backspace")
    page.evaluate("document.activeElement.blur()")

    # Modifier keys never fire a shortcut.
    page.keyboard.press("Alt+a")
    assert page.evaluate("document.activeElement.tagName") != "BUTTON"

    # a puts focus on Approve and says so; Enter confirms.
    page.keyboard.press("a")
    assert focused_text(page) == "Approve"
    announced(page).to_contain_text("press Enter to confirm")
    page.keyboard.press("Enter")
    next_link = page.locator("#next-document")
    expect(next_link).to_be_focused()
    expect(next_link).to_contain_text("Riverside library closes")
    shot(page, "document-next-1280")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Riverside library closes", level=1)).to_be_visible()
    keys_ready(page)
    assert Review.objects.get(document=first).decision == "approved"

    # v without feedback goes to the comment first; then Tab to Request revision.
    page.keyboard.press("v")
    assert page.evaluate("document.activeElement.id") == "id_comment"
    announced(page).to_contain_text("needs feedback")
    page.keyboard.type("Say when the library reopens.")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("v")
    assert focused_text(page) == "Request revision"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Summary, round 2")).to_be_visible()
    expect(page.locator("#history")).to_contain_text("Revision requested")
    expect(page.locator("#history")).to_contain_text("Say when the library reopens.")
    assert Review.objects.get(document=second, round=1).decision == "revise"

    # k goes back to the previous document in the queue (none left before it): said aloud.
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("k")
    announced(page).to_contain_text("No previous document")


def test_claims_and_the_history_in_the_browser_at_both_widths(login, people):
    document = submit(people, "Mill Lane footbridge", TEXT)
    bob = login("bob")
    wait_for_queue(bob, 1)
    bob.locator("#queue").get_by_role("link", name="Mill Lane footbridge").focus()
    bob.keyboard.press("Enter")
    claim = bob.get_by_role("button", name="Claim this review")
    claim.focus()
    bob.keyboard.press("Enter")
    expect(bob.locator("#claim")).to_contain_text("Claimed by you")

    alice = login("alice", width=375, height=800)
    alice.goto("/queue/")
    expect(alice.locator("#queue")).to_contain_text("by bob")
    shot(alice, "queue-claimed-375")
    alice.goto(f"/documents/{document.pk}/")
    expect(alice.locator("#claim")).to_contain_text("Claimed by bob")
    keys_ready(alice)
    alice.evaluate("document.activeElement.blur()")
    alice.keyboard.press("a")
    alice.keyboard.press("Enter")
    expect(alice.get_by_role("alert")).to_contain_text("confirm to decide it anyway")
    assert Review.objects.get(document=document).decision == ""
    shot(alice, "document-claimed-confirm-375")
    width = alice.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone ({width}px wide)"

    alice.get_by_label(re.compile("Decide anyway")).focus()
    alice.keyboard.press("Space")
    alice.evaluate("document.activeElement.blur()")
    alice.keyboard.press("a")
    alice.keyboard.press("Enter")
    expect(alice.locator("#status")).to_have_text(re.compile(r"publish", re.IGNORECASE))
    expect(alice.locator("#history")).to_contain_text("(claimed by bob)")
    expect(alice.locator("#history")).to_contain_text("Claimed")
    expect(alice.locator("#history")).to_contain_text("Published")
    shot(alice, "document-history-375")
    bob.reload()
    expect(bob.locator("#history")).to_contain_text("approved round 1")
    shot(bob, "document-history-1280")
    kinds = list(AuditEntry.objects.filter(document=document).values_list("kind", flat=True))
    assert kinds[:4] == ["submitted", "summary", "claimed", "decision"]
    services.document_record_event(document.pk, "reminder", None, "reminded bob")  # another helper's kind
    bob.reload()
    expect(bob.locator("#history")).to_contain_text("Reminder sent")


def test_the_queue_search_and_filters_at_375_px(login, people):
    submit(people, "Mill Lane footbridge", TEXT)
    submit(people, "Riverside library closes", OTHER)
    page = login("alice", width=375, height=800)
    wait_for_queue(page, 2)
    page.get_by_label("Search title and text").fill("mobile library")
    page.get_by_label("Search title and text").press("Enter")
    expect(page.locator("#queue tr.open")).to_have_count(1)
    expect(page.locator("#queue")).to_contain_text("Riverside library closes")
    expect(page.locator("#queue")).to_contain_text("1 matching")
    shot(page, "queue-search-375")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the queue scrolls sideways on a phone ({width}px wide)"
    page.set_viewport_size({"width": 1280, "height": 900})
    shot(page, "queue-search-1280")
