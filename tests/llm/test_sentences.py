import pytest

from llm.sentences import WordTokenizer, split_sentences, words

pytestmark = pytest.mark.usefixtures("no_network")


def test_abbreviations_do_not_end_sentences():
    text = "Dr. Smith met Mr. Jones at 3 p.m. on Jan. 5. They talked, e.g. about U.S. policy! Then it rained."
    assert split_sentences(text) == [
        "Dr. Smith met Mr. Jones at 3 p.m. on Jan. 5.",
        "They talked, e.g. about U.S. policy!",
        "Then it rained.",
    ]


def test_sentences_are_verbatim_slices_including_line_wraps():
    text = "  A sentence wrapped\nover two lines. Is this a question?  Yes.\n"
    sentences = split_sentences(text)
    assert sentences == ["A sentence wrapped\nover two lines.", "Is this a question?", "Yes."]
    assert all(s in text for s in sentences)


def test_blank_lines_separate_headings_from_sentences():
    text = "ANNUAL REPORT\n\nThe year went well.\n  \t\nSecond paragraph here."
    assert split_sentences(text) == ["ANNUAL REPORT", "The year went well.", "Second paragraph here."]


@pytest.mark.parametrize("text", ["", "   ", "\n\n \n"])
def test_blank_text_has_no_sentences(text):
    assert split_sentences(text) == []


def test_words_are_letters_with_inner_apostrophes_and_hyphens():
    assert words("The reviewer's follow-up came 3 times - twice by e-mail; ok?") == (
        "The",
        "reviewer's",
        "follow-up",
        "came",
        "times",
        "twice",
        "by",
        "e-mail",
        "ok",
    )


def test_word_tokenizer_serves_sumy():
    tokenizer = WordTokenizer()
    assert tokenizer.language == "english"
    assert tokenizer.to_words("Budgets grew, 12 percent.") == ("Budgets", "grew", "percent")
    assert tokenizer.to_sentences("One here. Two there.") == ("One here.", "Two there.")


def test_headings_and_list_items_stand_alone_inside_a_paragraph():
    text = (
        "Treasurer's report\nThe account holds 5,830 euros.\n"
        "Agenda\n- Release status\n- On-call rotation\n"
        "1. Welcome\nThe chair opened the meeting."
    )
    assert split_sentences(text) == [
        "Treasurer's report",
        "The account holds 5,830 euros.",
        "Agenda",
        "- Release status",
        "- On-call rotation",
        "1. Welcome",
        "The chair opened the meeting.",
    ]


def test_wrapped_prose_is_not_taken_for_headings():
    text = "The support desk ran a\ntrial of a four-day week. Each of the\nnine agents worked\nFridays off."
    assert split_sentences(text) == [
        "The support desk ran a\ntrial of a four-day week.",
        "Each of the\nnine agents worked\nFridays off.",
    ]
