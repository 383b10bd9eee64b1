"""Sentence and word splitting for the offline summarizer, with no downloads.

Sentences come from nupunkt's built-in Punkt model (shipped inside the package), applied to each
paragraph (blank-line separated) so a heading never runs into the sentence after it. Every
sentence returned is a verbatim slice of the input, stripped of surrounding whitespace.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nupunkt import PunktSentenceTokenizer

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
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


def split_sentences(text: str) -> list[str]:
    """The sentences of `text` in order, each exactly as it appears in `text` (stripped)."""
    sentences = []
    for start, end in _paragraph_spans(text):
        paragraph = text[start:end]
        if not paragraph.strip():
            continue
        for begin, finish in _punkt().span_tokenize(paragraph):
            sentence = paragraph[begin:finish].strip()
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
