from llm.prompt import SYSTEM_PROMPT, Prompt, build_prompt


def test_document_instructions_and_feedback_in_that_order():
    prompt = build_prompt("  The text.  ", instructions="For the board.", feedback="Mention costs.")
    assert prompt.system == SYSTEM_PROMPT
    assert "<document>\nThe text.\n</document>" in prompt.user
    document_at = prompt.user.index("The text.")
    instructions_at = prompt.user.index("Instructions:\nFor the board.")
    feedback_at = prompt.user.index("Their feedback:\nMention costs.")
    assert document_at < instructions_at < feedback_at


def test_blank_instructions_and_feedback_are_left_out():
    plain = build_prompt("The text.")
    assert plain == build_prompt("The text.", instructions="  ", feedback="")
    assert "Instructions" not in plain.user
    assert "feedback" not in plain.user
    assert isinstance(plain, Prompt)


def test_the_title_goes_inside_the_document_only_when_given():
    titled = build_prompt("The text.", title="  Harbour works  ")
    assert "<document>\nTitle: Harbour works\n\nThe text.\n</document>" in titled.user
    assert build_prompt("The text.", title="   ") == build_prompt("The text.")
    assert "Title:" not in build_prompt("The text.").user
