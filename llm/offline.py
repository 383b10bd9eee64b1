"""The default summarizer: extractive, offline, deterministic.

It keeps the most central sentences by sumy's LexRank (a graph of sentence similarities) and
returns them verbatim, in document order, joined by single spaces. It needs no key, no network
and no downloaded data (sentences from nupunkt's bundled model, stop words from sumy's package).

* Length: SUMMARY_RATIO x the number of distinct sentences, rounded, at least one.
* Instructions and feedback steer it as `llm.steering` describes: a request for a shorter or
  longer summary halves or doubles the ratio, and sentences sharing more distinct (stemmed)
  content words with the request are kept first, LexRank's score breaking ties.
* Repeated sentences count once. Long documents are ranked in consecutive blocks of
  BLOCK_SENTENCES (LexRank is quadratic), each keeping its share of the summary.
* Token counts are word counts of the document and of the summary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from llm.conf import LLMConfig
from llm.errors import EmptyDocumentError
from llm.sentences import WordTokenizer, split_sentences, words
from llm.steering import Steering, read_steering, stem
from llm.types import Summary

PROVIDER = "offline"
MODEL = "sumy-lexrank"
BLOCK_SENTENCES = 150


def summarize(
    text: str,
    *,
    instructions: str | None = None,
    feedback: str | None = None,
    config: LLMConfig,
) -> Summary:
    """Summarize `text` by extraction. Raises EmptyDocumentError when it has no sentences."""
    sentences = list(dict.fromkeys(split_sentences(text)))  # first occurrence of each, in order
    if not sentences:
        raise EmptyDocumentError("nothing to summarize: the text is empty", provider=PROVIDER)
    steering = read_steering(instructions=instructions, feedback=feedback)
    count = sentence_count(len(sentences), config.summary_ratio * steering.length_factor)
    chosen = select_sentences(sentences, count, steering)
    summary = " ".join(chosen)
    return Summary(
        text=summary,
        provider=PROVIDER,
        model=MODEL,
        input_tokens=len(words(text)),
        output_tokens=len(words(summary)),
    )


def sentence_count(total: int, ratio: float) -> int:
    """How many of `total` sentences a summary at `ratio` keeps: rounded half up, 1 to total."""
    return max(1, min(total, math.floor(total * ratio + 0.5)))


def select_sentences(sentences: Sequence[str], count: int, steering: Steering) -> list[str]:
    """The `count` sentences to keep, in document order."""
    if count >= len(sentences):
        return list(sentences)
    chosen: list[str] = []
    total = len(sentences)
    for start in range(0, total, BLOCK_SENTENCES):
        end = min(start + BLOCK_SENTENCES, total)
        # Cumulative rounding: the blocks' shares add up to exactly `count`.
        share = _share(count, end, total) - _share(count, start, total)
        if share > 0:
            chosen.extend(_rank_block(sentences[start:end], share, steering))
    return chosen


def _share(count: int, position: int, total: int) -> int:
    return math.floor(count * position / total + 0.5)


def _rank_block(block: Sequence[str], keep: int, steering: Steering) -> list[str]:
    if keep >= len(block):
        return list(block)
    import numpy
    from sumy.models.dom import ObjectDocumentModel, Paragraph, Sentence  # type: ignore[import-untyped]
    from sumy.summarizers.lex_rank import LexRankSummarizer  # type: ignore[import-untyped]
    from sumy.utils import get_stop_words  # type: ignore[import-untyped]

    tokenizer = WordTokenizer()
    document = ObjectDocumentModel([Paragraph([Sentence(s, tokenizer) for s in block])])
    lexrank = LexRankSummarizer(stem)
    lexrank.stop_words = get_stop_words("english")
    # A block whose sentences share no weighted word gives LexRank a zero matrix (NaN scores).
    with numpy.errstate(divide="ignore", invalid="ignore"):
        kept = lexrank(document, _Pick(keep, steering.focus_terms))
    return [str(sentence) for sentence in kept]


class _Pick:
    """sumy's sentence-count hook: given sentences best-rated first, return the ones to keep.

    Focus terms come first, then LexRank's score rounded so that float noise (set order varies
    with the hash seed) cannot reorder near-equal sentences, then document order.
    """

    def __init__(self, keep: int, focus_terms: frozenset[str]) -> None:
        self.keep = keep
        self.focus_terms = focus_terms

    def __call__(self, infos: Sequence[Any]) -> list[Any]:
        return sorted(infos, key=self._key)[: self.keep]

    def _key(self, info: Any) -> tuple[int, float, int]:
        hits = len(self.focus_terms & {stem(w) for w in info.sentence.words}) if self.focus_terms else 0
        rating = float(info.rating)
        score = round(rating, 9) if math.isfinite(rating) else 0.0
        return (-hits, -score, info.order)
