"""A document longer than the summarizer's input budget: split on sentence boundaries, its parts
summarized with context.map, combined per round; a revision combines again without summarizing
the parts again. 500,000 characters, offline and through an OpenAI-compatible fake server."""

import itertools
import json

import pytest
from django.test import Client

from approvals import workflows
from approvals.models import Document, PublishedSummary, Review
from approvals.services import document_submit, review_decide
from durable.client import list_operations
from durable.testing import DurableTestRunner
from llm.sentences import split_sentences
from tests.approvals.fixtures import make_people
from tests.llm.fakes import FakeServer, Reply, chat_completion

# Item threads read the document on connections of their own: the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

TOPICS = ["the harbour", "the library", "the tram line", "the school roof", "the river path", "the market"]


def long_text(characters: int) -> str:
    """Distinct sentences in paragraphs, about `characters` long (200 pages at 500,000)."""
    paragraphs, size, n = [], 0, 0
    while size < characters:
        sentences = []
        for _ in range(8):
            topic = TOPICS[n % len(TOPICS)]
            sentences.append(f"Item {n} of the minutes says the council discussed {topic} for {n % 50 + 5} minutes.")
            n += 1
        paragraph = " ".join(sentences)
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(paragraphs)


@pytest.fixture
def people():
    return make_people()


def awaiting(runner, document: Document, round_number: int) -> Review:
    runner.wait_for_callback(str(document.execution_id))
    return Review.objects.get(document=document, round=round_number)


def part_steps(document: Document) -> list:
    return [op for op in list_operations(document.execution_id) if (op.name or "").startswith("summarize part ")]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_200_page_document_goes_through_in_parts_offline(people, settings):
    text = long_text(500_000)
    settings.APPROVALS = {"PART_CONCURRENCY": 3}
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document = document_submit(title="Council minutes", text=text, submitter=people["submitter"])
        review = awaiting(runner, document, 1)
        parts = review.parts
        assert len(parts) == len(part_steps(document)) >= 25  # 20,000 characters a part, offline
        assert parts[0]["start"] == 0
        assert parts[-1]["end"] == len(text)
        assert all(a["end"] == b["start"] for a, b in itertools.pairwise(parts))
        sentences = set(split_sentences(text))
        for part in parts:  # each part's summary is sentences of the passage it covers
            passage = text[part["start"] : part["end"]]
            assert part["text"]
            assert all(s in passage for s in split_sentences(part["text"]))
        assert all(s in sentences for s in split_sentences(review.summary))  # still extractive
        assert len(review.summary) < 20_000
        # The reviewer sees that the summary came from N parts, and the passage each covers.
        browser = Client()
        browser.force_login(people["reviewer"])
        page = browser.get(f"/documents/{document.pk}/").content.decode()
        assert f"Combined from {len(parts)} parts of the document" in page
        assert f"Characters 1\u2013{parts[0]['end']} of the source, from “Item 0 of the minutes" in page
        assert f"Characters {parts[1]['start'] + 1}\u2013{parts[1]['end']} of the source" in page
        names = [op.name for op in list_operations(document.execution_id)]
        assert names[:3] == ["split into parts", "summarize parts", "part 1"]

        # A revision combines the parts again with the feedback; the parts are not summarized again.
        review_decide(review, reviewer=people["reviewer"], decision="revise", comment="Focus on the harbour.")
        second = awaiting(runner, document, 2)
        assert len(part_steps(document)) == len(parts)
        assert all(op.attempt == 1 for op in part_steps(document))
        assert second.parts == parts
        assert "harbour" in second.summary
        review_decide(second, reviewer=people["reviewer"], decision="approved")
        result = runner.wait_for_result(str(document.execution_id))
    assert result.status == "SUCCEEDED", result.error
    assert json.loads(result.result)["status"] == "published"
    assert PublishedSummary.objects.get(document=document).text == second.summary


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_200_page_document_goes_through_an_openai_compatible_server(people, settings):
    text = long_text(500_000)
    server = FakeServer().start()
    try:
        settings.LLM = {
            "PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": f"{server.url}/v1",
            "OPENAI_MODEL": "fake-model",
        }
        parts = -(-len(text) // 48_000)  # at least this many parts of 48,000 characters
        server.reply(
            *(Reply(body=chat_completion(f"Summary number {i} of the council's work.")) for i in range(parts + 5))
        )
        with DurableTestRunner(workflows.summarize_approve_persist) as runner:
            document = document_submit(title="Council minutes", text=text, submitter=people["submitter"])
            review = awaiting(runner, document, 1)
    finally:
        server.stop()
    calls = [r.body["messages"][1]["content"] for r in server.requests]
    assert len(review.parts) >= parts
    assert len(calls) == len(review.parts) + 1  # each part once, then the combination
    for part in review.parts:  # each part's call carried its passage, and its answer is kept
        passage = text[part["start"] : part["end"]]
        assert any(passage.strip() in call for call in calls[:-1])
        assert part["text"].startswith("Summary number")
    assert "summarized in parts" in calls[-1]
    assert all(part["text"] in calls[-1] for part in review.parts)
    assert review.summary.startswith("Summary number")
    assert review.summary_provider == "openai"
