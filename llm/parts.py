"""Long documents in parts: character ranges that each fit one call, cut where sentences begin.

The ranges cover the whole text in order, with nothing left out or repeated, so each part's
summary can say exactly which passage of the source it covers. A sentence longer than the budget
(a table flattened into one line, say) is cut at the last whitespace that fits, else at the budget.
"""

from __future__ import annotations

from bisect import bisect_right

from llm.sentences import split_sentences


def sentence_starts(text: str) -> list[int]:
    """Where each sentence of `text` begins (every sentence is a verbatim slice of it)."""
    starts, position = [], 0
    for sentence in split_sentences(text):
        found = text.find(sentence, position)
        if found < 0:  # cannot happen for verbatim slices; never lose text over it
            continue
        starts.append(found)
        position = found + len(sentence)
    return starts


def split_parts(text: str, budget: int) -> list[tuple[int, int]]:
    """[start, end) ranges of `text`, each at most `budget` characters, covering it in order.

    One range when the text fits. Raises ValueError for a budget under 1."""
    if budget < 1:
        raise ValueError("the budget must be at least 1 character")
    if len(text) <= budget:
        return [(0, len(text))]
    cuts = [s for s in sentence_starts(text) if s > 0] + [len(text)]
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < len(text):
        end = start + budget
        if end >= len(text):
            ranges.append((start, len(text)))
            break
        last = bisect_right(cuts, end) - 1  # the last sentence start within the budget
        cut = cuts[last] if last >= 0 and cuts[last] > start else _inside_sentence(text, start, end)
        ranges.append((start, cut))
        start = cut
    return ranges


def _inside_sentence(text: str, start: int, end: int) -> int:
    space = text.rfind(" ", start + 1, end)
    newline = text.rfind("\n", start + 1, end)
    cut = max(space, newline)
    return cut + 1 if cut > start else end
