import pytest

from llm.prompt import build_prompt
from llm.steering import LONGER_FACTOR, SHORTER_FACTOR, Steering, focus_terms, read_steering, stem


@pytest.mark.parametrize(
    ("feedback", "factor"),
    [
        ("Make it shorter.", SHORTER_FACTOR),
        ("This is too long.", SHORTER_FACTOR),
        ("Be more concise", SHORTER_FACTOR),
        ("Please trim it", SHORTER_FACTOR),
        ("Make it longer.", LONGER_FACTOR),
        ("Too brief.", LONGER_FACTOR),
        ("Too short; expand on the costs", LONGER_FACTOR),
        ("I want more detail.", LONGER_FACTOR),
        ("Shorter, yet with more detail", 1.0),
        ("Mention the harvest.", 1.0),
    ],
)
def test_length_requests(feedback, factor):
    assert read_steering(instructions=None, feedback=feedback).length_factor == factor


def test_feedback_decides_length_over_instructions():
    assert read_steering(instructions="Be brief.", feedback="Too short.").length_factor == LONGER_FACTOR
    assert read_steering(instructions="Be brief.", feedback="Mention costs.").length_factor == SHORTER_FACTOR


def test_focus_terms_are_stemmed_content_words():
    assert focus_terms("Please focus on the budgets and the hiring plans in the summary.") == {"budget", "hire", "plan"}


def test_focus_terms_leave_out_length_requests():
    assert focus_terms("Too long. Shorter, and more detail on volunteers.") == {"volunt"}


def test_instructions_and_feedback_focus_terms_are_combined():
    steering = read_steering(instructions="Write for the treasurer.", feedback="Mention the grant.")
    assert steering == Steering(length_factor=1.0, focus_terms=frozenset({"treasur", "grant"}))


def test_nothing_asked_means_no_steering():
    assert read_steering(instructions=None, feedback=None) == Steering()
    assert read_steering(instructions="", feedback="   ") == Steering()


def test_stem_is_lower_case_english_stem():
    assert stem("Budgets") == "budget"
    assert stem("Running") == "run"


def test_feedback_of_every_round_counts_and_length_requests_compound():

    kept = read_steering(instructions=None, feedback=["Shorter, please.", "Focus on the glacier."])
    assert kept.length_factor == SHORTER_FACTOR  # round 2's "shorter" still holds in round 3
    assert {"glacier"} <= kept.focus_terms
    twice = read_steering(instructions=None, feedback=["Shorter.", "Still too long."])
    assert twice.length_factor == SHORTER_FACTOR * SHORTER_FACTOR
    undone = read_steering(instructions=None, feedback=["Shorter.", "Longer: more detail."])
    assert undone.length_factor == SHORTER_FACTOR * LONGER_FACTOR  # longer after shorter wins over it
    assert read_steering(instructions=None, feedback=["Shorter."] * 10).length_factor == 0.125  # bounded
    # One text, as before; feedback decides over the instructions' length.
    assert read_steering(instructions="Be brief.", feedback="Longer.").length_factor == LONGER_FACTOR
    assert read_steering(instructions="Be brief.", feedback=[]).length_factor == SHORTER_FACTOR


def test_the_chat_prompt_lists_every_round_oldest_first():

    prompt = build_prompt("The text.", feedback=["Shorter.", "Focus on the glacier."])
    assert "Their feedback, oldest first:\n1. Shorter.\n2. Focus on the glacier.\n" in prompt.user
    assert "the later one wins" in prompt.user
    single = build_prompt("The text.", feedback=["Shorter."])
    assert "Their feedback:\nShorter.\n" in single.user
