"""The prompt both chat providers send: one system prompt, then the document and any guidance."""

from __future__ import annotations

from dataclasses import dataclass

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
    text: str, *, title: str | None = None, instructions: str | None = None, feedback: str | None = None
) -> Prompt:
    """Put the document (with its title, if any), then the instructions, then the reviewer's
    feedback into one user message."""
    titled = f"Title: {title.strip()}\n\n" if title and title.strip() else ""
    parts = [f"Summarize the document between the <document> tags.\n\n<document>\n{titled}{text.strip()}\n</document>"]
    if instructions and instructions.strip():
        parts.append(f"Instructions:\n{instructions.strip()}")
    if feedback and feedback.strip():
        parts.append(
            "A reviewer asked for a revision of the previous summary. Their feedback:\n"
            f"{feedback.strip()}\n"
            "Write a new summary that addresses this feedback."
        )
    return Prompt(system=SYSTEM_PROMPT, user="\n\n".join(parts))
