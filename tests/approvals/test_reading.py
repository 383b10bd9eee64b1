"""The document page as a reviewer reads it: the summary beside its source, linked both ways, the
changes between rounds, progress in words (engine internals for staff only), dates with zones."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from approvals import selectors
from approvals.templatetags.approvals_ui import moment, waited
from tests.approvals import test_views
from tests.approvals.test_views import HTMX, awaiting, client_for, decide_url

# The same users and time-skipping runner as the document page's other tests.
people = test_views.people
runner = test_views.runner

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _frozen_minute(monkeypatch):
    monkeypatch.setattr(selectors, "_minute", lambda: 0)


def test_each_summary_sentence_links_to_its_highlighted_source_sentence_and_back(runner, people):
    document, review = awaiting(runner, people)
    page = client_for(people["reviewer"]).get(reverse("approvals:document", args=[document.pk]))
    body, alignment = page.content.decode(), page.context["alignment"]
    assert alignment.summary
    assert all(s.exact for s in alignment.summary)  # the offline summarizer
    for sentence in alignment.summary:
        for source in sentence.sources:
            assert f'href="#src-{source}"' in body  # summary -> source
            assert re.search(rf'<mark class="src-sentence" id="src-{source}">', body)
            assert f'href="#sum-{sentence.index}"' in body  # source -> summary
    marked = re.findall(r'<mark class="src-sentence" id="src-\d+">([^<]*)</mark>', body)
    assert " ".join(marked) == review.summary  # exactly the sentences the summary took
    assert body.index('id="current-summary"') < body.index('id="source"')  # beside it, not below the steps


def test_after_a_revision_the_page_shows_the_changes_from_the_round_before(runner, people):
    document, review = awaiting(runner, people)
    client = client_for(people["reviewer"])
    client.post(decide_url(document, review), {"decision": "revise", "comment": "Shorter, please."}, **HTMX)
    runner.wait_for_callback(str(document.execution_id))
    page = client.get(reverse("approvals:document", args=[document.pk]))
    body = page.content.decode()
    assert "Changes from round 1" in body
    assert '<del><span class="sr-only">removed: </span>' in body  # shorter: words went
    second = document.reviews.get(round=2)
    shown = "".join(c.text for c in page.context["changes"] if c.kind != "removed")
    assert shown == second.summary


def test_reviewers_see_progress_in_words_and_no_engine_internals(runner, people):
    document, _ = awaiting(runner, people)
    body = client_for(people["reviewer"]).get(reverse("approvals:document", args=[document.pk])).content.decode()
    assert "Awaiting review" in body
    for internal in ("review #1", "callback", "Engine steps", "/admin/durable/execution/"):
        assert internal not in body


def test_staff_get_the_engine_steps_and_a_link_to_the_execution_in_the_admin(runner, people):
    document, _ = awaiting(runner, people)
    people["staff"].groups.add(*people["reviewer"].groups.all())
    body = client_for(people["staff"]).get(reverse("approvals:document", args=[document.pk])).content.decode()
    assert f'href="/admin/durable/execution/{document.execution_id}/change/"' in body
    assert "Engine steps" in body
    assert "review #1" in body


def test_dates_carry_year_and_zone_and_waits_read_naturally():
    from datetime import UTC, datetime, timedelta

    from django.utils import timezone

    html = moment(datetime(2026, 12, 2, 17, 5, tzinfo=UTC))
    assert html == '<time datetime="2026-12-02T17:05:00+00:00" data-local>2 Dec 2026, 17:05 UTC</time>'
    assert waited(timezone.now() - timedelta(minutes=2, seconds=5)) == "2\xa0minutes"
    assert waited(timezone.now()) == "under a minute"
