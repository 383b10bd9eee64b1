import itertools

import pytest

import llm
from llm.conf import ConfigurationError
from llm.parts import sentence_starts, split_parts
from llm.sentences import split_sentences


def assert_cover(text: str, ranges: list[tuple[int, int]], budget: int) -> None:
    assert ranges[0][0] == 0
    assert ranges[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))  # nothing lost or repeated
    assert all(0 < end - start <= budget for start, end in ranges)


def test_a_text_that_fits_is_one_part(document):
    assert split_parts(document, len(document)) == [(0, len(document))]


@pytest.mark.parametrize("budget", [300, 1000, 2500])
def test_parts_cover_the_text_and_begin_where_sentences_begin(document, budget):
    ranges = split_parts(document, budget)
    assert len(ranges) > 1
    assert_cover(document, ranges, budget)
    starts = set(sentence_starts(document))
    assert all(start in starts for start, _ in ranges[1:])  # never inside a sentence
    # Every sentence lies whole inside one part.
    for sentence in split_sentences(document):
        assert any(sentence in document[start:end] for start, end in ranges)


def test_a_sentence_longer_than_the_budget_is_cut_at_whitespace_then_anywhere():
    text = "Short one. " + "word " * 100 + "end. Last."
    ranges = split_parts(text, 60)
    assert_cover(text, ranges, 60)
    assert all(text[start - 1] == " " for start, _ in ranges[1:])  # cut after a space
    unbroken = "x" * 250
    assert_cover(unbroken, split_parts(unbroken, 100), 100)
    with pytest.raises(ValueError):
        split_parts(unbroken, 0)


def test_sentence_starts_are_where_each_sentence_is(document):
    for start, sentence in zip(sentence_starts(document), split_sentences(document), strict=True):
        assert document[start : start + len(sentence)] == sentence


def test_the_input_budget_is_the_providers_unless_set(settings):
    assert llm.input_budget() == 20_000  # offline
    settings.LLM = {"PROVIDER": "openai", "OPENAI_API_KEY": "k"}
    assert llm.input_budget() == 48_000
    settings.LLM = {"PROVIDER": "bedrock", "INPUT_CHARS": "5000"}
    assert llm.input_budget() == 5000
    settings.LLM = {"INPUT_CHARS": 10}
    with pytest.raises(ConfigurationError, match="at least 1000"):
        llm.input_budget()


@pytest.mark.usefixtures("no_network")
def test_offline_keeps_within_max_chars_and_every_sentence_is_the_documents(document):
    full = llm.summarize(document)
    short = llm.summarize(document, max_chars=400)
    assert len(short.text) <= 400 < len(full.text)
    sentences = set(split_sentences(document))
    assert all(s in sentences for s in split_sentences(short.text))


def test_a_chat_model_is_asked_for_the_length_and_cut_when_it_runs_over(settings, fake_server, document):
    from tests.llm.fakes import Reply, chat_completion

    settings.LLM = {"PROVIDER": "openai", "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": f"{fake_server.url}/v1"}
    long_answer = "The garden grew well this year. " * 20
    fake_server.replies.append(Reply(body=chat_completion(long_answer.strip())))
    summary = llm.summarize(document, max_chars=100)
    assert "at most 20 words" in fake_server.requests[0].body["messages"][1]["content"]
    assert len(summary.text) <= 100
    assert summary.text.endswith("year.")


@pytest.mark.usefixtures("no_network")
def test_combine_summarizes_the_parts_summaries_following_feedback(document):
    parts = [document[s:e] for s, e in split_parts(document, 1500)]
    summaries = [llm.summarize(part, max_chars=500).text for part in parts]
    combined = llm.combine(summaries, feedback="Mention the volunteers.")
    pooled = {s for text in summaries for s in split_sentences(text)}
    assert combined.text
    assert all(s in pooled for s in split_sentences(combined.text))
