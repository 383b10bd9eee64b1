"""Checks shared by the offline summarizer's tests."""

import sys


def picked(summary_text: str, sentences: list[str]) -> list[int]:
    """Indexes of the input sentences the summary is made of; fails unless it is exactly those, in order.

    It backtracks: a heading can be a prefix of the sentence after it ("Membership" of "Membership has
    grown..."), and the first match is then not always the right one."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(sentences) + 100))

    def solve(first: int, position: int) -> list[int] | None:
        if position == len(summary_text) + 1:  # joined by one space
            return []
        for index in range(first, len(sentences)):
            sentence = sentences[index]
            end = position + len(sentence)
            if summary_text.startswith(sentence, position) and (end == len(summary_text) or summary_text[end] == " "):
                rest = solve(index + 1, end + 1)
                if rest is not None:
                    return [index, *rest]
        return None

    indexes = solve(0, 0)
    assert indexes is not None, f"not made of input sentences in order: {summary_text!r}"
    return indexes
