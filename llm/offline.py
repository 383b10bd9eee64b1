"""The default summarizer: extractive, offline, deterministic.

Every sentence gets a salience score, and sentences are then picked greedily, best first, each
pick's value lowered by its similarity to the sentences already picked (maximal marginal
relevance), so the summary does not say one thing twice. The chosen sentences are returned
verbatim, in document order, joined by single spaces. It needs no key, no network and no
downloaded data (sentences from nupunkt's bundled model, stop words from sumy's package).

* Salience: CENTRALITY x the LexRank score (sumy's weighting, threshold and power method, the graph
  built in one matrix product; scaled so the block's best is 1), TITLE x the share
  of the title's content words the sentence mentions (the title, or a leading heading when there
  is none), LEAD x the sentence's place among the content sentences (`llm.salience.lead_scores`),
  plus `llm.salience.cue` (decisions and figures up; headings, greetings, sign-offs, attendance
  lines and fragments down).
* Redundancy: a candidate loses REDUNDANCY x its highest TF-IDF cosine with a chosen sentence.
* Length: SUMMARY_RATIO x the number of distinct sentences, rounded, at least one.
* Instructions and feedback steer it as `llm.steering` describes: a request for a shorter or
  longer summary halves or doubles the ratio, and sentences sharing more distinct (stemmed)
  content words with the request are kept first, the score above breaking ties.
* Repeated sentences count once. Long documents are ranked in consecutive blocks of
  BLOCK_SENTENCES (LexRank is quadratic), each keeping its share of the summary.
* Token counts are word counts of the document and of the summary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy

from llm.conf import LLMConfig
from llm.errors import EmptyDocumentError
from llm.salience import TermIndex, content_stems, cue, is_heading, lead_scores
from llm.sentences import split_sentences, words
from llm.steering import Feedback, Steering, read_steering
from llm.types import Summary

PROVIDER = "offline"
MODEL = "salience-mmr"
BLOCK_SENTENCES = 150
CENTRALITY = 1.0
TITLE = 1.2
LEAD = 0.3
REDUNDANCY = 0.7
# Scores are rounded before they are compared, so float noise (a BLAS may sum in another order)
# cannot reorder near-equal sentences; document order breaks ties.
_DIGITS = 9


def summarize(
    text: str,
    *,
    title: str | None = None,
    instructions: str | None = None,
    feedback: Feedback = None,
    config: LLMConfig,
) -> Summary:
    """Summarize `text` (titled `title`) by extraction. Raises EmptyDocumentError when it has no sentences."""
    sentences = list(dict.fromkeys(split_sentences(text)))  # first occurrence of each, in order
    if not sentences:
        raise EmptyDocumentError("nothing to summarize: the text is empty", provider=PROVIDER)
    steering = read_steering(instructions=instructions, feedback=feedback)
    count = sentence_count(len(sentences), config.summary_ratio * steering.length_factor)
    chosen = select_sentences(sentences, count, steering, title=title)
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


def select_sentences(
    sentences: Sequence[str], count: int, steering: Steering, *, title: str | None = None
) -> list[str]:
    """The `count` sentences to keep, in document order."""
    if count >= len(sentences):
        return list(sentences)
    index = TermIndex(sentences)
    title_terms = frozenset(content_stems(title or _leading_heading(sentences)))
    cues = [cue(s) for s in sentences]
    salience = [
        TITLE * index.title_overlap(i, title_terms) + LEAD * lead + cues[i]
        for i, lead in enumerate(lead_scores(sentences, cues))
    ]
    chosen: list[int] = []
    total = len(sentences)
    for start in range(0, total, BLOCK_SENTENCES):
        end = min(start + BLOCK_SENTENCES, total)
        # Cumulative rounding: the blocks' shares add up to exactly `count`.
        share = _share(count, end, total) - _share(count, start, total)
        if share > 0:
            chosen.extend(_pick_block(sentences, start, end, share, index, salience, steering))
    return [sentences[i] for i in sorted(chosen)]


def _share(count: int, position: int, total: int) -> int:
    return math.floor(count * position / total + 0.5)


def _leading_heading(sentences: Sequence[str]) -> str:
    """A document without a title often opens with one: its first line, if that is a heading."""
    return sentences[0] if is_heading(sentences[0]) else ""


def _pick_block(
    sentences: Sequence[str],
    start: int,
    end: int,
    keep: int,
    index: TermIndex,
    salience: Sequence[float],
    steering: Steering,
) -> list[int]:
    """Indexes (into `sentences`) of the `keep` sentences of [start, end) chosen by MMR."""
    size = end - start
    if keep >= size:
        return list(range(start, end))
    vectors = index.vectors(start, end)
    similarity = vectors @ vectors.T
    centrality = _lexrank(index.lexrank_vectors(start, end))
    score = [CENTRALITY * centrality[i] + salience[start + i] for i in range(size)]
    hits = [_hits(index.terms[start + i], steering.focus_terms) for i in range(size)]
    closest = numpy.zeros(size)  # each candidate's highest similarity to a chosen sentence
    remaining = set(range(size))
    picked: list[int] = []
    for _ in range(keep):
        best = min(remaining, key=lambda i: (-hits[i], -round(score[i] - REDUNDANCY * float(closest[i]), _DIGITS), i))
        remaining.discard(best)
        picked.append(best)
        numpy.maximum(closest, similarity[best], out=closest)
    return [start + i for i in picked]


def _hits(terms: Sequence[str], focus_terms: frozenset[str]) -> int:
    return len(focus_terms & set(terms)) if focus_terms else 0


def _lexrank(vectors: numpy.ndarray) -> list[float]:
    """LexRank (Erkan and Radev): sumy's power method over the graph linking sentences whose TF-IDF
    cosine exceeds sumy's threshold, each row divided by its degree, as sumy builds it, but from
    the block's vectors in one matrix product (sumy's own loop is quadratic in Python). Scaled so
    that the best is 1; all 0 when no sentence has a content word (the power method gives NaN)."""
    from sumy.summarizers.lex_rank import LexRankSummarizer  # type: ignore[import-untyped]

    adjacency = (vectors @ vectors.T > LexRankSummarizer.threshold).astype(float)
    degrees = adjacency.sum(axis=1, keepdims=True)
    matrix = adjacency / numpy.maximum(degrees, 1.0)
    with numpy.errstate(divide="ignore", invalid="ignore"):
        scores = LexRankSummarizer.power_method(matrix, LexRankSummarizer.epsilon)
    ratings = [round(float(r), _DIGITS) if math.isfinite(float(r)) else 0.0 for r in scores]
    best = max(ratings)
    return [r / best if best > 0 else 0.0 for r in ratings]
