"""The admin's execution page, list and operations page in real Chromium at 1280 px: an execution
with long names and values, many operations, retries, a child context, a wait and an open
callback is drawn as a timeline that needs no sideways scrolling, and its details open on demand.
Screenshots go to var/screenshots/ for a person to look at."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, Page, expect

from durable import DurableContext, Duration, RetryDecision, StepConfig, durable_execution
from durable.client import set_execution_attention, start_execution
from durable.models import Execution, Operation
from durable.testing import DurableTestRunner
from tests.e2e.conftest import PASSWORD

pytestmark = [pytest.mark.e2e]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
LONG = "reconcile-the-quarterly-ledger-entries-against-the-bank-statement-export-" * 3
flaky = {"left": 0}


def _retry_in_7s(error: Exception, attempts: int) -> RetryDecision:
    return RetryDecision.retry(Duration(7)) if attempts < 5 else RetryDecision.no_retry()


def _sometimes(_) -> str:
    if flaky["left"]:
        flaky["left"] -= 1
        raise RuntimeError("upstream said 503 " + "x" * 300)
    return "ok"


@durable_execution(name="tests.e2e.admin.busy")
def busy(event: dict, context: DurableContext) -> str:
    def inner(child: DurableContext) -> list:
        return [child.step(lambda _, i=i: {"part": i, "blob": "y" * 500}, name=f"{LONG} part {i}") for i in range(3)]

    context.run_in_child_context(inner, name="child context with a long name " + LONG)
    context.step(_sometimes, name="call the flaky upstream " + LONG, config=StepConfig(retry_strategy=_retry_in_7s))
    for i in range(event["n"]):
        context.step(lambda _, i=i: "z" * 400 + str(i), name=f"step {i} {LONG}")
    context.wait(Duration(45), name="cool-off " + LONG)
    return context.create_callback(name="sign-off " + LONG).result()


@pytest.fixture
def seeded(transactional_db):
    flaky["left"] = 2
    with DurableTestRunner(busy) as runner:
        execution_id = runner.run_async(json.dumps({"n": 230}), execution_name="e2e-" + "n" * 150)
        runner.wait_for_callback(execution_id)
    for i in range(3):
        start_execution(busy, {"n": i}, label=f"Document {i}: " + "a very long title " * 8)
    Execution.objects.filter(pk=execution_id).update(label="Quarterly ledger " + "long title " * 12)
    set_execution_attention(execution_id, "webhook not delivered")
    get_user_model().objects.create_superuser("root", password=PASSWORD)
    return execution_id


@pytest.fixture
def admin_page(browser: Browser, live_server, seeded):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=live_server.url)
    page = context.new_page()
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    yield page
    context.close()


WIDEST = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .slice(0, 8)
  .map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""


def no_sideways_scroll(page: Page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    # What sticks out, to say which element to fix.
    wide = page.evaluate(WIDEST)
    assert widths[0] <= widths[1], (widths, wide)


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def test_the_timeline_fits_1280_px_and_opens_details_on_demand(admin_page: Page, seeded):
    page = admin_page
    page.goto(f"/admin/durable/execution/{seeded}/change/")
    expect(page.locator("#timeline")).to_be_visible()
    expect(page.locator("#execution-attention")).to_have_text("⚠ webhook not delivered")
    no_sideways_scroll(page)
    shot(page, "execution-top-1280")
    rows = page.locator("#timeline .timeline-row")
    expect(rows).to_have_count(200)  # capped, with a way to all
    expect(page.locator("#timeline-more")).to_contain_text("more operations not drawn")
    no_sideways_scroll(page)
    page.locator("#timeline").scroll_into_view_if_needed()
    shot(page, "timeline-1280")
    # The retried step: two failed attempts and their waits, then the attempt that worked.
    retried = rows.filter(has_text="call the flaky upstream")
    expect(retried.locator(".tl-failed")).to_have_count(2)
    expect(retried.locator(".tl-retry")).to_have_count(2)
    expect(retried.locator(".tl-run")).to_have_count(1)
    # A long name is cut with an ellipsis, and opens in full.
    summary = retried.locator("summary")
    assert summary.evaluate("e => e.scrollWidth > e.clientWidth")
    summary.click()
    expect(retried.locator(".tl-more")).to_contain_text("upstream said 503")
    no_sideways_scroll(page)
    retried.scroll_into_view_if_needed()
    shot(page, "timeline-details-1280")
    # The child context's steps are indented under it.
    child_rows = page.locator('#timeline .timeline-row[data-depth="1"]')
    expect(child_rows).to_have_count(3)
    page.get_by_role("link", name="Show all").click()
    assert Operation.objects.filter(execution_id=seeded).count() == 1 + 3 + 1 + 230 + 1 + 1
    expect(page.locator("#timeline .timeline-row")).to_have_count(1 + 3 + 1 + 230 + 1 + 1)
    no_sideways_scroll(page)
    wait_row = page.locator("#timeline .timeline-row", has_text="cool-off")
    expect(wait_row.locator(".tl-wait")).to_have_attribute("title", re.compile(r"^wait 45 s"))
    wait_row.scroll_into_view_if_needed()
    shot(page, "timeline-end-1280")


def test_the_list_and_the_operations_page_fit_1280_px(admin_page: Page, seeded):
    page = admin_page
    page.goto("/admin/durable/execution/")
    row = page.locator("#result_list tr", has_text="Quarterly ledger")
    expect(row.locator(".attention")).to_have_text("⚠ webhook not delivered")
    expect(row.locator(".wait-callback")).to_contain_text("since")
    no_sideways_scroll(page)
    # Nor does the table scroll inside its box.
    shot(page, "executions-list-1280")
    box = page.evaluate("(b => [b.scrollWidth, b.clientWidth])(document.querySelector('.results'))")
    assert box[0] <= box[1], box
    page.get_by_role("link", name="Operations").click()
    expect(page.locator("svg.chart")).to_have_count(4)
    no_sideways_scroll(page)
    shot(page, "operations-1280")
