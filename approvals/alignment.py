"""Which sentences of the source each summary sentence came from, and what changed between rounds.

Pure functions of text, for the document page: the reviewer reads the summary beside its source
with each summary sentence linked to the sentence(s) it came from, and both ways back.

* Exact: a summary sentence found verbatim in the source (the offline summarizer only ever
  returns input sentences) is linked to the source sentences its text spans.
* Best match: any other sentence (an LLM's) is linked to the source sentence sharing the most
  stemmed content words with it (overlap over the summary sentence's words, difflib's ratio
  breaking ties), plus a runner-up that scores nearly as well (a sentence fusing two). A sentence
  sharing too little with every source sentence is linked to none rather than to a poor guess.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache

from llm.salience import content_stems
from llm.sentences import split_sentences

# A best match needs this share of the summary sentence's content words in the source sentence.
MIN_OVERLAP = 0.3
# A second source sentence is linked too when it scores at least this share of the best.
RUNNER_UP = 0.8
CANDIDATES = 8
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_TOKEN = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class SummarySentence:
    """One sentence of the summary and the indices of the source sentences it came from."""

    index: int
    text: str
    sources: tuple[int, ...]
    exact: bool


@dataclass(frozen=True)
class Segment:
    """A run of the source's text: a sentence (index set) or the space between sentences."""

    text: str
    sentence: int | None = None
    summary: tuple[int, ...] = ()


@dataclass(frozen=True)
class Alignment:
    summary: list[SummarySentence]
    # The source's paragraphs, each a list of segments that together are its exact text.
    paragraphs: list[list[Segment]] = field(default_factory=list)

    @property
    def linked_sources(self) -> int:
        return len({i for s in self.summary for i in s.sources})


def source_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) character range of each sentence of `text`, in order."""
    spans, position = [], 0
    for sentence in split_sentences(text):
        start = text.find(sentence, position)
        if start < 0:  # split_sentences promises verbatim slices; be safe all the same
            continue
        spans.append((start, start + len(sentence)))
        position = start + len(sentence)
    return spans


@lru_cache(maxsize=64)
def align(source: str, summary: str) -> Alignment:
    """The summary's sentences, each linked to the source sentences it came from, and the source
    cut into paragraphs of segments (sentences marked with the summary sentences citing them).

    Cached: a page polled while its document waits asks for the same alignment again and again
    (treat the result as read-only)."""
    spans = source_spans(source)
    sentences = [source[a:b] for a, b in spans]
    stems: list[frozenset[str]] = []  # computed only if some sentence is not verbatim
    linked: list[SummarySentence] = []
    position = 0
    for index, sentence in enumerate(split_sentences(summary)):
        hits, position = _exact(source, sentence, spans, position)
        if hits:
            linked.append(SummarySentence(index, sentence, hits, True))
        else:
            stems = stems or [frozenset(content_stems(s)) for s in sentences]
            linked.append(SummarySentence(index, sentence, _best(sentence, sentences, stems), False))
    cited: dict[int, list[int]] = {}
    for item in linked:
        for source_index in item.sources:
            cited.setdefault(source_index, []).append(item.index)
    return Alignment(summary=linked, paragraphs=_paragraphs(source, spans, cited))


def _exact(source: str, sentence: str, spans: list[tuple[int, int]], position: int) -> tuple[tuple[int, ...], int]:
    """Source sentences a verbatim summary sentence spans (looked for after the last one first:
    extracts keep document order), and where to look next."""
    start = source.find(sentence, position)
    if start < 0:
        start = source.find(sentence)
    if start < 0:
        return (), position
    end = start + len(sentence)
    hits = tuple(i for i, (a, b) in enumerate(spans) if a < end and b > start)
    return hits, end


def _best(sentence: str, sentences: list[str], stems: list[frozenset[str]]) -> tuple[int, ...]:
    words = frozenset(content_stems(sentence))
    if not words:
        return ()
    overlaps = [(len(words & candidate) / len(words), i) for i, candidate in enumerate(stems)]
    # difflib is slow on long texts: only the few best by shared words are compared character-wise.
    candidates = sorted((o for o in overlaps if o[0] >= MIN_OVERLAP), key=lambda o: (-o[0], o[1]))[:CANDIDATES]
    if not candidates:
        return ()
    scores = []
    for overlap, i in candidates:
        ratio = difflib.SequenceMatcher(None, sentence.lower(), sentences[i].lower(), autojunk=False).ratio()
        scores.append((overlap + 0.25 * ratio, i))
    scores.sort(key=lambda item: (-item[0], item[1]))
    best = scores[0][0]
    chosen = [i for score, i in scores[:2] if score >= RUNNER_UP * best]
    return tuple(sorted(chosen))


def _paragraphs(source: str, spans: list[tuple[int, int]], cited: dict[int, list[int]]) -> list[list[Segment]]:
    paragraphs: list[list[Segment]] = []
    start = 0
    bounds = [(m.start(), m.end()) for m in _PARAGRAPH_BREAK.finditer(source)] + [(len(source), len(source))]
    sentence = 0
    for break_start, break_end in bounds:
        segments: list[Segment] = []
        cursor = start
        while sentence < len(spans) and spans[sentence][0] < break_start:
            a, b = spans[sentence]
            if a > cursor:
                segments.append(Segment(source[cursor:a]))
            segments.append(Segment(source[a:b], sentence, tuple(cited.get(sentence, ()))))
            cursor = b
            sentence += 1
        if break_start > cursor:
            segments.append(Segment(source[cursor:break_start]))
        if any(s.text.strip() for s in segments):
            paragraphs.append(_trimmed(segments))
        start = break_end
    return paragraphs


def _trimmed(segments: list[Segment]) -> list[Segment]:
    """Leading and trailing blank runs dropped (the template draws the paragraph's edges)."""
    while segments and segments[0].sentence is None and not segments[0].text.strip():
        segments = segments[1:]
    while segments and segments[-1].sentence is None and not segments[-1].text.strip():
        segments = segments[:-1]
    return segments


@dataclass(frozen=True)
class Change:
    """A run of words of a word-level diff: "same", "added" or "removed"."""

    kind: str
    text: str


def diff_words(before: str, after: str) -> list[Change]:
    """The word-level difference from `before` to `after` (difflib), as runs of equal, removed and
    added text; concatenating the "same" and "added" runs gives `after` back exactly."""
    old, new = _tokens(before), _tokens(after)
    changes: list[Change] = []
    matcher = difflib.SequenceMatcher(None, _words(old), _words(new), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            changes.append(Change("same", "".join(new[j1:j2])))
            continue
        if i2 > i1:
            changes.append(Change("removed", "".join(old[i1:i2])))
        if j2 > j1:
            changes.append(Change("added", "".join(new[j1:j2])))
    return changes


def _tokens(text: str) -> list[str]:
    """Words with their trailing whitespace, so a diff of them keeps the text's spacing."""
    return _TOKEN.findall(text)


@cache
def _stripped(token: str) -> str:
    return token.strip()


def _words(tokens: list[str]) -> list[str]:
    return [_stripped(t) for t in tokens]
