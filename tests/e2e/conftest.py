"""Browser tests: Playwright drives Debian's headless Chromium against a live server.

The live server runs in a thread of the test process; a real worker process and a real Redis
run the workflow. Playwright's sync API keeps an event loop running in the main thread, so the
ORM calls tests make there need DJANGO_ALLOW_ASYNC_UNSAFE (set before any test runs).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import Browser, Page, expect, sync_playwright

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Chromium on a machine with no network and no GPU: nothing in the background, no sandbox (root).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
PASSWORD = "pw-e2e-long-enough-1"

expect.set_options(timeout=20_000)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"Chromium is not at {CHROMIUM}: `make test` installs Debian's chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def people(transactional_db):
    users = get_user_model().objects
    reviewers = Group.objects.get(name="Reviewers")
    people = {name: users.create_user(name, password=PASSWORD) for name in ("submitter", "alice", "bob", "outsider")}
    for name in ("alice", "bob"):
        people[name].groups.add(reviewers)
    return people


@pytest.fixture
def app(live_server, workers, people):
    """The whole product: live web server, one worker process, Redis; returns the base URL."""
    workers(1)
    return live_server.url


@pytest.fixture
def login(browser: Browser, app: str) -> Iterator[Callable[..., Page]]:
    """login(username, width=..., timezone=...) -> a page of a fresh browser context, logged in
    through the form (`timezone`: the browser's, e.g. "America/New_York")."""
    contexts = []

    def log_in(username: str, *, width: int = 1280, height: int = 900, timezone: str | None = None) -> Page:
        options: dict = {"viewport": {"width": width, "height": height}, "base_url": app}
        if timezone:
            options["timezone_id"] = timezone
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        return page

    yield log_in
    for context in contexts:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
