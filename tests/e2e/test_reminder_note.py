"""A reminder and an escalation sent by a real worker on durable timers appear on the open
document page by themselves (polling), as notes with their time."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from approvals.services import document_submit

pytestmark = [pytest.mark.e2e, pytest.mark.processes]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
TEXT = (
    "The river trust will open a new footbridge at Mill Lane in April. The bridge replaces a ferry "
    "that ran for forty years. Cyclists and walkers can cross day and night."
)


@pytest.fixture
def app(live_server, workers, people, settings):
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "REMIND_AFTER": 2, "ESCALATE_AFTER": 4}
    workers(1)
    return live_server.url


@pytest.mark.parametrize("width", [1280, 375])
def test_reminder_and_escalation_notes_appear_live(login, people, width):
    document = document_submit(title="Mill Lane footbridge", text=TEXT, submitter=people["submitter"])
    page = login("alice", width=width)
    page.goto(f"/documents/{document.pk}/")
    expect(page.locator("#current-summary .prose")).not_to_be_empty()
    notes = page.locator("#document-events li")
    expect(notes.nth(0)).to_contain_text("Reminder sent")
    expect(notes.nth(1)).to_contain_text("Escalated to admins")
    expect(notes).to_have_count(2)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"reminder-notes-{width}.png"), full_page=False)
