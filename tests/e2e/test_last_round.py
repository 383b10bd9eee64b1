"""The last round in a real browser: the page says which round it is and what a revision
request does at the last one, asks to confirm (keyboard only), and shows the feedback with the
outcome. A real worker runs the workflow with one round, so the first is the last."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from approvals.models import Review
from approvals.services import document_submit

pytestmark = [pytest.mark.e2e, pytest.mark.processes]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
TEXT = (
    "The river trust will open a new footbridge at Mill Lane in April. The bridge replaces a ferry "
    "that ran for forty years. Cyclists and walkers can cross day and night. The trust paid for most "
    "of the work with a national grant. Local schools helped choose the name of the bridge."
)


@pytest.fixture
def app(live_server, workers, people, settings):
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "MAX_ROUNDS": 1}
    workers(1, APPROVALS_MAX_ROUNDS="1")
    return live_server.url


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("width", [1280, 375])
def test_the_last_round_warns_asks_and_keeps_the_feedback_keyboard_only(login, people, width):
    document = document_submit(title="Mill Lane footbridge", text=TEXT, submitter=people["submitter"])
    page = login("alice", width=width)
    page.goto(f"/documents/{document.pk}/")
    expect(page.locator("#current-summary .prose")).not_to_be_empty()
    expect(page.locator("#round-of")).to_have_text("Round 1 of 1: the last round")
    revise = page.get_by_role("button", name="Request revision (rejects: last round)")
    expect(revise).to_have_accessible_description(re.compile("rejects the document"))
    shoot(page, f"last-round-{width}")

    # Keyboard only: type the feedback, tab to the revision button, press Enter.
    page.locator("#id_comment").focus()
    page.keyboard.type("Name the grant.")
    for _ in range(10):
        page.keyboard.press("Tab")
        if revise.evaluate("b => b === document.activeElement"):
            break
    expect(revise).to_be_focused()
    page.keyboard.press("Enter")

    confirm = page.get_by_role("button", name="Reject with this feedback")
    expect(page.get_by_role("alert")).to_contain_text("rejects the document")
    expect(page.locator("#id_comment")).to_have_value("Name the grant.")
    expect(confirm).to_be_focused()
    assert Review.objects.get(document=document).is_open  # nothing decided before the confirmation
    shoot(page, f"last-round-confirm-{width}")
    page.keyboard.press("Enter")

    expect(page.locator("#status")).to_have_text(re.compile(r"^\s*rejected\s*$"))
    outcome = page.locator(".last-round-outcome")
    expect(outcome).to_contain_text("so the document was rejected")
    expect(outcome).to_contain_text("“Name the grant.”")
    expect(page.locator(".status-line")).to_contain_text("the last feedback: “Name the grant.”")
    shoot(page, f"last-round-outcome-{width}")
