import pytest

from llm.salience import (
    ADMINISTRATIVE_PENALTY,
    DECISION_BONUS,
    HEADING_PENALTY,
    NUMBER_BONUS,
    PLEASANTRY_PENALTY,
    SHORT_PENALTY,
    TermIndex,
    cue,
    is_heading,
    lead_scores,
)

pytestmark = pytest.mark.usefixtures("no_network")


@pytest.mark.parametrize(
    ("sentence", "heading"),
    [
        ("Treasurer's report", True),
        ("2. The lift", True),
        ("Release 3.2", True),
        ("- Priya: fix payment test timeouts (Wednesday)", False),  # a bulleted action item is content
        ("- Hiring", False),
        ("The council voted to close the library.", False),
        ("3. The committee voted to close the lift for repairs.", False),
    ],
)
def test_headings(sentence, heading):
    assert is_heading(sentence) is heading


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Winter fair", HEADING_PENALTY),
        ("Hi everyone,", PLEASANTRY_PENALTY),
        ("Dear colleagues,", PLEASANTRY_PENALTY),
        ("I hope this message finds you well.", PLEASANTRY_PENALTY),
        ("Thanks, and have a great weekend!", PLEASANTRY_PENALTY),
        ("Please don't hesitate to reach out if you have any questions before Monday.", PLEASANTRY_PENALTY),
        ("Present: Anna Keller (chair), Tom Richter, Sara Novak.", ADMINISTRATIVE_PENALTY),
        ("The meeting closed at 9 pm and everyone went home.", ADMINISTRATIVE_PENALTY),
        ("Everyone agreed.", SHORT_PENALTY),
        ("The council voted to close the library branch.", DECISION_BONUS),
        ("The account holds a large sum after the summer fete.", 0.0),
        ("The account holds 5,830 euros after the summer fete.", NUMBER_BONUS),
        ("The council voted seven to two to close the library.", DECISION_BONUS + NUMBER_BONUS),
    ],
)
def test_cues(sentence, expected):
    assert cue(sentence) == pytest.approx(expected)


def test_the_lead_skips_what_is_not_content():
    sentences = [
        "Minutes",
        "Present: Ann, Bo.",
        "The first news of the day is here.",
        "The second piece of news follows it.",
        "Thanks!",
    ]
    scores = lead_scores(sentences, [cue(s) for s in sentences])
    assert scores == pytest.approx([0.0, 0.0, 1.0, 2**-0.5, 0.0])


def test_title_overlap_weighs_rare_words_more():
    index = TermIndex(["The library will close.", "The library opens late.", "The budget grew.", "Budgets rose."])
    title = frozenset({"librari", "close"})
    assert index.title_overlap(0, title) == pytest.approx(1.0)
    assert 0 < index.title_overlap(1, title) < 0.5  # "library" is in two sentences, "close" in one
    assert index.title_overlap(2, title) == 0.0
    assert index.title_overlap(2, frozenset()) == 0.0


def test_vectors_are_unit_rows_and_similar_sentences_are_close():
    index = TermIndex(["The library will close.", "The library will close soon.", "Budgets rose.", "!!!"])
    vectors = index.vectors(0, 4)
    similarity = vectors @ vectors.T
    assert similarity[0, 0] == pytest.approx(1.0)
    assert similarity[0, 1] > 0.8 > similarity[0, 2] == pytest.approx(0.0)
    assert not vectors[3].any()  # no content word: a zero row, not NaN
