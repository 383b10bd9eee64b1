"""What makes a sentence worth keeping, beside its centrality: the offline summarizer's features.

LexRank alone ranks by how much a sentence shares with the others, which favours long, wordy
sentences and knows nothing of what the document is about (its title), where news puts its point
(the lead), or what a reader wants from minutes and e-mails (the decision and the figures, not the
greeting, the attendance list or the sign-off). These are the other signals, each cheap, each
deterministic:

* `TermIndex`: stemmed content words of every sentence with document frequencies, giving TF-IDF
  vectors for similarity (to the title, and between sentences for redundancy).
* `cue`: a small bonus for decisions, plans and figures; a penalty for headings, greetings and
  sign-offs, attendance and closing lines, and fragments of a few words.
* `lead_scores`: earlier content sentences score higher (headings and pleasantries do not count as
  the lead).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import cache

import numpy

from llm.sentences import words
from llm.steering import stem

# A decision, a plan, a finding: what minutes, news and reports lead with.
_DECISION = re.compile(
    r"\b(?:vot(?:ed|es?)|decid(?:ed|es)|decision|agreed|approv(?:ed|es)|resolved|adopted|rejected|accepted"
    r"|chose|chosen|elected|appointed|announced|confirmed|postponed|cancel(?:l)?ed|closed?|clos(?:es|ing)"
    r"|will|plans?|propos(?:ed|es)|recommends?|expects?|must|cause[ds]?|because|fell|rose|grew|cut|raised?"
    r"|increas(?:ed|es)|reduc(?:ed|es)|replac(?:ed|es)|launch(?:ed|es)?|opened|won|moved?)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred"
    r"|thousand|million|billion|percent|half|third|quarter|double|twice)\b",
    re.IGNORECASE,
)
# Greetings and sign-offs: what opens and closes an e-mail, never its news.
_GREETING = re.compile(r"^(?:hi|hello|hey|dear|greetings|good (?:morning|afternoon|evening)|to whom)\b", re.I)
_PLEASANTRY = re.compile(
    r"^(?:i |we )?(?:hope|trust)\b|^(?:many |a )?thanks?\b|^thank you\b|^(?:best|kind|warm|warmest)"
    r" (?:regards|wishes)\b|^(?:best|regards|cheers|sincerely|yours|all the best|take care)\b"
    r"|^looking forward\b|^(?:please )?(?:do not|don't|feel free) (?:hesitate|to)\b|^if you have any questions"
    r"|^let me know\b|^sent from my\b|^have a (?:great|good|nice|lovely)\b|^just a (?:quick )?(?:reminder|note)\b"
    r"|^quick reminder\b|^sorry for the (?:slow|late) reply",
    re.IGNORECASE,
)
# Administrative lines of minutes and reports: who came, when and where, when it ended.
_ADMINISTRATIVE = re.compile(
    r"^(?:present|attendees|attending|apologies|absent|in attendance|date|time|location|venue|place|chair"
    r"|chaired by|minutes taken by|secretary|agenda|board members present|next meeting)\b[^:]{0,30}:"
    r"|\bthe meeting (?:closed|ended|was closed|opened)\b|\b(?:opened|closed) the meeting\b"
    r"|\b(?:welcomed|thanked) (?:everyone|all|the members)\b|\bminutes of the (?:\w+ )?meeting\b"
    r"|\bthe agenda was (?:accepted|approved|adopted|agreed)\b",
    re.IGNORECASE,
)
_LIST_MARKER = re.compile(r"^(?:[-*\u2022\u00b7\u2013\u2014]|\d{1,3}[.)])\s+")
_BULLET = re.compile(r"^[-*\u2022\u00b7\u2013\u2014]\s+")
_CLOSING = ".!?\u2026"

SHORT_WORDS = 5
HEADING_WORDS = 10
NUMBERED_HEADING_WORDS = 5
DECISION_BONUS = 0.3
NUMBER_BONUS = 0.15
HEADING_PENALTY = -2.0
PLEASANTRY_PENALTY = -1.0
ADMINISTRATIVE_PENALTY = -0.6
SHORT_PENALTY = -0.4
# A cue at or under this marks a sentence that is not part of the lead.
NOT_CONTENT = -0.3


@cache
def _stop_words() -> frozenset[str]:
    from sumy.utils import get_stop_words  # type: ignore[import-untyped]

    return frozenset(get_stop_words("english"))


def content_stems(text: str) -> list[str]:
    """Stems of the words of `text` that are not stop words, in order (repeats kept)."""
    stop_words = _stop_words()
    return [stem(w) for w in words(text) if w.lower() not in stop_words]


def is_heading(sentence: str) -> bool:
    """A line with no closing punctuation and few words: a heading or a label, not a sentence.

    A bulleted item ("- Priya: fix the tests (Wednesday)") is content, often an action or a
    decision, so it is never a heading; a numbered one of a few words ("2. The lift") is a
    numbered section's heading."""
    if _BULLET.match(sentence):
        return False
    numbered = _LIST_MARKER.match(sentence) is not None
    body = _LIST_MARKER.sub("", sentence).strip()
    limit = NUMBERED_HEADING_WORDS if numbered else HEADING_WORDS
    return bool(body) and body[-1] not in _CLOSING and len(words(body)) <= limit and "\n" not in body


def cue(sentence: str) -> float:
    """A signed adjustment from the sentence's kind: negative for headings, greetings and sign-offs,
    attendance and closing lines and fragments; positive for decisions, plans and figures."""
    body = _LIST_MARKER.sub("", sentence).strip()
    count = len(words(body))
    if (_GREETING.match(body) and count <= 6) or _PLEASANTRY.match(body):
        return PLEASANTRY_PENALTY
    if is_heading(sentence):
        return HEADING_PENALTY
    if _ADMINISTRATIVE.search(body):
        return ADMINISTRATIVE_PENALTY + (SHORT_PENALTY if count < SHORT_WORDS else 0.0)
    score = 0.0
    if count < SHORT_WORDS:
        return SHORT_PENALTY
    if _DECISION.search(body):
        score += DECISION_BONUS
    if _NUMBER.search(body):
        score += NUMBER_BONUS
    return score


def lead_scores(sentences: Sequence[str], cues: Sequence[float]) -> list[float]:
    """1 for the first content sentence, 1/sqrt(1 + rank) for the rank-th after it, 0 for headings,
    pleasantries and administrative lines (their cue is NOT_CONTENT or lower)."""
    scores, rank = [], 0
    for _sentence, score in zip(sentences, cues, strict=True):
        if score <= NOT_CONTENT:
            scores.append(0.0)
            continue
        scores.append(1.0 / math.sqrt(1.0 + rank))
        rank += 1
    return scores


class TermIndex:
    """Stemmed content words of a document's sentences, with their document frequencies."""

    def __init__(self, sentences: Sequence[str]) -> None:
        self.terms = [content_stems(s) for s in sentences]
        self.frequency: Counter[str] = Counter()
        for terms in self.terms:
            self.frequency.update(set(terms))
        self.total = len(sentences)

    def idf(self, term: str) -> float:
        """Smoothed inverse document frequency (positive for every term, seen or not)."""
        return math.log((1 + self.total) / (1 + self.frequency[term])) + 1.0

    def vectors(self, start: int, end: int) -> numpy.ndarray:
        """Unit-length TF-IDF rows (counts times the document's IDF) for sentences [start, end)."""
        counts, vocabulary = self._counts(start, end)
        return _unit_rows(counts * numpy.array([self.idf(t) for t in vocabulary] or [1.0]))

    def lexrank_vectors(self, start: int, end: int) -> numpy.ndarray:
        """Unit-length rows weighted as sumy's LexRank weighs them: term frequency over the sentence's
        highest, times log(n / (1 + sentences with the term)) within the block."""
        counts, _ = self._counts(start, end)
        highest = counts.max(axis=1, keepdims=True)
        frequency = numpy.divide(counts, highest, out=numpy.zeros_like(counts), where=highest > 0)
        return _unit_rows(frequency * numpy.log(len(counts) / (1.0 + (counts > 0).sum(axis=0))))

    def _counts(self, start: int, end: int) -> tuple[numpy.ndarray, list[str]]:
        """Term counts of sentences [start, end) over their own sorted vocabulary."""
        block = self.terms[start:end]
        vocabulary = sorted({t for terms in block for t in terms})
        column = {t: i for i, t in enumerate(vocabulary)}
        counts = numpy.zeros((len(block), max(len(vocabulary), 1)))
        for row, terms in enumerate(block):
            for term, count in Counter(terms).items():
                counts[row, column[term]] = count
        return counts, vocabulary

    def title_overlap(self, index: int, title_terms: frozenset[str]) -> float:
        """The share of the title's content (weighted by IDF) that sentence `index` mentions."""
        if not title_terms:
            return 0.0
        present = title_terms & set(self.terms[index])
        total = sum(self.idf(t) for t in sorted(title_terms))
        return sum(self.idf(t) for t in sorted(present)) / total


def _unit_rows(matrix: numpy.ndarray) -> numpy.ndarray:
    """Each row scaled to length 1 (rows of zeros stay zeros)."""
    norms = numpy.linalg.norm(matrix, axis=1, keepdims=True)
    unit: numpy.ndarray = numpy.divide(matrix, norms, out=numpy.zeros_like(matrix), where=norms > 0)
    return unit
