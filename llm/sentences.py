"""Sentence and word splitting for the offline summarizer, with no downloads.

Sentences come from nupunkt's built-in Punkt model (shipped inside the package), applied to each
paragraph (blank-line separated) so a heading never runs into the sentence after it. Inside a
paragraph, a list item ("- ...", "* ...", "1. ...") and a heading line (a short line with no closing
punctuation, on a line of its own after a sentence's end, followed by a line that starts with a
capital, a digit or a list marker) stand alone too: minutes and notes put headings on the line
above their text, with no blank line between.
Every sentence returned is a verbatim slice of the input, stripped of surrounding whitespace.
"""

from __future__ import annotations

import re
from functools import cache
from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nupunkt import PunktSentenceTokenizer

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*\u2022\u00b7\u2013\u2014]|\d{1,3}[.)])[ \t]+\S")
_SENTENCE_ENDS = (".", "!", "?", ":", "\u2026")
_HEADING_MAX_CHARS = 60
_HEADING_MAX_WORDS = 8
# Letters, with inner apostrophes or hyphens ("reviewer's", "follow-up"); numbers are not words here.
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")


@cache
def _punkt() -> PunktSentenceTokenizer:
    import nupunkt

    return nupunkt.load("default")


def _paragraph_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return spans


def _is_heading(line: str, following: str) -> bool:
    stripped = line.strip()
    if not stripped or len(stripped) > _HEADING_MAX_CHARS or len(stripped.split()) > _HEADING_MAX_WORDS:
        return False
    if stripped[-1] in ".!?,;:\u2026\"')\u201d\u2019]":
        return False
    opening = following.lstrip()
    return bool(opening) and (opening[0].isupper() or opening[0].isdigit() or bool(_LIST_ITEM.match(following)))


def _line_runs(paragraph: str) -> list[str]:
    """The paragraph cut before each list item and after each list item or heading line."""
    lines = paragraph.split("\n")
    runs, current = [], [lines[0]]
    for previous, line in pairwise(lines):
        # A heading opens its own line: the line before it ended a sentence (or there is none),
        # else it is the end of a wrapped sentence ("Each of the\nnine agents worked\nFridays off.").
        opens = len(current) == 1 or current[-2].rstrip().endswith(_SENTENCE_ENDS)
        if _LIST_ITEM.match(line) or _LIST_ITEM.match(previous) or (opens and _is_heading(previous, line)):
            runs.append("\n".join(current))
            current = []
        current.append(line)
    runs.append("\n".join(current))
    return runs


def split_sentences(text: str) -> list[str]:
    """The sentences of `text` in order, each exactly as it appears in `text` (stripped)."""
    sentences = []
    for start, end in _paragraph_spans(text):
        paragraph = text[start:end]
        if not paragraph.strip():
            continue
        for run in _line_runs(paragraph):
            if not run.strip():
                continue
            for begin, finish in _punkt().span_tokenize(run):
                sentence = run[begin:finish].strip()
                if sentence:
                    sentences.append(sentence)
    return sentences


def words(text: str) -> tuple[str, ...]:
    """The words of `text` as they are written (no case folding, no numbers or punctuation)."""
    return tuple(_WORD.findall(text))


class WordTokenizer:
    """What sumy's `Sentence` needs from a tokenizer, without NLTK's punkt data."""

    language = "english"

    def to_sentences(self, paragraph: str) -> tuple[str, ...]:
        """Sentences of a paragraph (sumy's parsers call this; the offline summarizer does not)."""
        return tuple(split_sentences(paragraph))

    def to_words(self, sentence: str) -> tuple[str, ...]:
        """Words of one sentence."""
        return words(sentence)
