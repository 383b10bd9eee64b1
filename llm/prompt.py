"""The prompt both chat providers send: one system prompt, then the document and any guidance."""

from __future__ import annotations

from dataclasses import dataclass

from llm.steering import Feedback, feedback_list

SYSTEM_PROMPT = (
    "You write summaries of documents for a human reviewer who decides whether to publish them. "
    "State only what the document says; do not add facts, opinions or advice. "
    "Write plain prose without headings or a preamble. "
    "When instructions or reviewer feedback are given, follow them; feedback asks you to revise "
    "an earlier summary of the same document."
)


@dataclass(frozen=True)
class Prompt:
    """The system prompt and the user's message."""

    system: str
    user: str


def build_prompt(
    text: str, *, title: str | None = None, instructions: str | None = None, feedback: Feedback = None
) -> Prompt:
    """Put the document (with its title, if any), then the instructions, then the reviewer's
    feedback into one user message."""
    titled = f"Title: {title.strip()}\n\n" if title and title.strip() else ""
    parts = [f"Summarize the document between the <document> tags.\n\n<document>\n{titled}{text.strip()}\n</document>"]
    if instructions and instructions.strip():
        parts.append(f"Instructions:\n{instructions.strip()}")
    rounds = feedback_list(feedback)
    if len(rounds) == 1:
        parts.append(
            "A reviewer asked for a revision of the previous summary. Their feedback:\n"
            f"{rounds[0]}\n"
            "Write a new summary that addresses this feedback."
        )
    elif rounds:
        listed = "\n".join(f"{i}. {text}" for i, text in enumerate(rounds, 1))
        parts.append(
            "A reviewer asked for revisions over several rounds. Their feedback, oldest first:\n"
            f"{listed}\n"
            "Write a new summary that addresses all of it; where two requests disagree, the later one wins."
        )
    return Prompt(system=SYSTEM_PROMPT, user="\n\n".join(parts))
