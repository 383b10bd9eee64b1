import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from llm import offline
from llm.conf import LLMConfig
from llm.errors import EmptyDocumentError, PermanentLLMError
from llm.offline import sentence_count, summarize
from llm.sentences import split_sentences, words
from tests.llm.helpers import picked

pytestmark = pytest.mark.usefixtures("no_network")

CONFIG = LLMConfig(summary_ratio=0.3)
REPO = Path(__file__).resolve().parents[2]


def with_words(sentences: list[str], *stems: str) -> set[int]:
    return {i for i, s in enumerate(sentences) if any(w.lower().startswith(stems) for w in words(s))}


def test_output_is_verbatim_input_sentences_in_order(document):
    sentences = split_sentences(document)
    summary = summarize(document, config=CONFIG)
    indexes = picked(summary.text, sentences)
    assert indexes == sorted(indexes)
    assert all(sentences[i] in document for i in indexes)


def test_length_follows_the_ratio(document):
    sentences = split_sentences(document)
    assert len(sentences) == 41
    for ratio, expected in [(0.1, 4), (0.3, 12), (0.5, 21), (1.0, 41)]:
        summary = summarize(document, config=LLMConfig(summary_ratio=ratio))
        assert len(picked(summary.text, sentences)) == expected
        assert abs(expected - ratio * len(sentences)) <= 1


def test_summary_fields(document):
    summary = summarize(document, config=CONFIG)
    assert summary.provider == "offline"
    assert summary.model == "salience-mmr"
    assert summary.input_tokens == len(words(document)) == 534
    assert summary.output_tokens == len(words(summary.text))
    assert 0 < summary.output_tokens < summary.input_tokens


def test_deterministic_across_calls(document):
    first = summarize(document, config=CONFIG, feedback="focus on the volunteers")
    assert all(summarize(document, config=CONFIG, feedback="focus on the volunteers") == first for _ in range(3))


def test_deterministic_across_processes_with_different_hash_seeds(document):
    # Set iteration order (and so float sums inside LexRank) changes with the hash seed.
    expected = summarize(document, config=CONFIG).text
    script = (
        "import json, socket, sys; socket.socket.connect = socket.socket.connect_ex = None; "
        "from llm.conf import LLMConfig; from llm.offline import summarize; "
        "print(json.dumps(summarize(sys.stdin.read(), config=LLMConfig(summary_ratio=0.3)).text))"
    )
    for seed in ("1", "2024"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        result = subprocess.run(
            [sys.executable, "-c", script],
            input=document,
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            check=True,
        )
        assert json.loads(result.stdout) == expected


def test_feedback_brings_in_sentences_sharing_its_words(document):
    sentences = split_sentences(document)
    plain = set(picked(summarize(document, config=CONFIG).text, sentences))
    steered = set(
        picked(summarize(document, config=CONFIG, feedback="Focus on the budget and the grant.").text, sentences)
    )
    about_money = with_words(sentences, "budget", "grant")
    assert len(about_money) == 4
    assert not about_money <= plain  # without feedback some are left out...
    assert about_money <= steered  # ...with it, all are kept
    assert len(steered) == len(plain)  # and the length is unchanged


def test_feedback_prefers_more_shared_words(document):
    sentences = split_sentences(document)
    chosen = picked(
        summarize(document, config=LLMConfig(summary_ratio=0.05), feedback="county grant budget").text, sentences
    )
    # Only two sentences contain all three words; a two-sentence summary keeps exactly those.
    assert [sentences[i] for i in chosen] == [
        "Plot fees covered about half of the budget, and a grant from the county covered most of the rest.",
        "The budget for next year will depend on whether the county renews its grant.",
    ]


def test_feedback_with_no_shared_words_changes_nothing(document):
    assert summarize(document, config=CONFIG, feedback="Mention the zebras.") == summarize(document, config=CONFIG)


@pytest.mark.parametrize(
    ("feedback", "expected"),
    [
        ("Too long, please make it shorter.", 6),
        ("More concise, please.", 6),
        ("Too brief: I need more detail.", 25),
        ("Make it longer.", 25),
        ("Shorter, but with more detail.", 12),  # contradictory: length unchanged
        (None, 12),
    ],
)
def test_feedback_changes_length(document, feedback, expected):
    summary = summarize(document, config=CONFIG, feedback=feedback)
    assert len(picked(summary.text, split_sentences(document))) == expected


def test_instructions_steer_like_feedback_but_feedback_wins_on_length(document):
    sentences = split_sentences(document)
    shorter = summarize(document, config=CONFIG, instructions="Keep it brief.")
    assert len(picked(shorter.text, sentences)) == 6
    overruled = summarize(document, config=CONFIG, instructions="Keep it brief.", feedback="Too short, expand it.")
    assert len(picked(overruled.text, sentences)) == 25


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \n"])
def test_empty_text_is_a_clear_permanent_error(text):
    with pytest.raises(EmptyDocumentError, match="nothing to summarize") as caught:
        summarize(text, config=CONFIG)
    assert isinstance(caught.value, PermanentLLMError)
    assert isinstance(caught.value, ValueError)
    assert caught.value.retryable is False


@pytest.mark.parametrize("text", ["Only one sentence here.", "  no punctuation at all  ", "Ends without a stop"])
def test_single_sentence_is_returned_as_is(text):
    summary = summarize(text, config=LLMConfig(summary_ratio=0.1))
    assert summary.text == text.strip()


def test_repeated_sentences_appear_once():
    text = "The meeting starts at noon. Bring a notebook. The meeting starts at noon. Lunch is provided."
    summary = summarize(text, config=LLMConfig(summary_ratio=1.0))
    assert summary.text == "The meeting starts at noon. Bring a notebook. Lunch is provided."


def test_sentences_with_nothing_in_common_keep_document_order():
    # LexRank scores all sentences alike here (its similarity matrix is zero), so order decides.
    summary = summarize("Cats purr. Dogs bark.", config=LLMConfig(summary_ratio=0.5))
    assert summary.text == "Cats purr."


def test_very_long_text_is_ranked_block_by_block(document):
    vocabulary = sorted({w.lower() for w in words(document)})
    rng = random.Random(7)
    sentences = [" ".join(rng.choice(vocabulary) for _ in range(12)).capitalize() + "." for _ in range(400)]
    text = "\n\n".join(sentences)  # one paragraph each: random words may end in an abbreviation
    assert split_sentences(text) == sentences
    summary = summarize(text, config=CONFIG)
    indexes = picked(summary.text, sentences)
    assert len(indexes) == 120
    blocks = [sum(1 for i in indexes if start <= i < start + offline.BLOCK_SENTENCES) for start in range(0, 400, 150)]
    assert blocks == [45, 45, 30]  # each block keeps its share


def test_no_network_guard_is_active():
    import socket

    from tests.llm.conftest import NetworkBlockedError

    with pytest.raises(NetworkBlockedError):
        socket.create_connection(("127.0.0.1", 9))


@pytest.mark.parametrize(
    ("total", "ratio", "expected"),
    [(41, 0.3, 12), (10, 0.25, 3), (10, 0.35, 4), (3, 0.01, 1), (5, 1.0, 5), (5, 2.0, 5), (1, 0.3, 1)],
)
def test_sentence_count_rounds_half_up_within_bounds(total, ratio, expected):
    assert sentence_count(total, ratio) == expected
