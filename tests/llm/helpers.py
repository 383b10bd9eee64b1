"""Checks shared by the offline summarizer's tests."""

import sys


def picked(summary_text: str, sentences: list[str], count: int | None = None) -> list[int]:
    """Indexes of the input sentences the summary is made of; fails unless it is exactly those, in order.

    It backtracks: a heading can be a prefix of the sentence after it ("Membership" of "Membership has
    grown..."), and the first match is then not always the right one. A text can also be made of the
    input's sentences in two ways (one sentence is two others joined: "Council Council" and "Council
    voted." and "Council Council Council voted."); with `count`, the way with that many is found, if any."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(sentences) + 100))

    def solve(first: int, position: int, left: int | None) -> list[int] | None:
        if position == len(summary_text) + 1:  # joined by one space
            return [] if not left else None
        if left == 0:
            return None
        for index in range(first, len(sentences)):
            sentence = sentences[index]
            end = position + len(sentence)
            if summary_text.startswith(sentence, position) and (end == len(summary_text) or summary_text[end] == " "):
                rest = solve(index + 1, end + 1, None if left is None else left - 1)
                if rest is not None:
                    return [index, *rest]
        return None

    indexes = solve(0, 0, count)
    if indexes is None and count is not None:
        indexes = solve(0, 0, None)  # made of another count of them: the caller's assertion says so
    assert indexes is not None, f"not made of input sentences in order: {summary_text!r}"
    return indexes
