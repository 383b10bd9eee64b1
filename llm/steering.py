"""How the offline summarizer reads instructions and reviewer feedback.

Two things, both deterministic:

* Length. Text asking for a shorter summary ("shorter", "too long", "more concise", "brief",
  "trim", ...) halves the share of sentences kept; text asking for a longer one ("longer",
  "too short", "more detail", "expand", "elaborate", ...) doubles it (at most every sentence).
  Feedback decides over instructions; text asking for both leaves the length alone.
* Rounds. Feedback may be a list, oldest first (each revision round's): every entry counts, so a
  later round keeps what earlier ones asked for. Length requests compound (each is relative to the
  summary it answered: "shorter" twice is a quarter, "longer" after "shorter" undoes it); focus
  terms add up.
* Focus. The remaining content words (stop words and words about summaries dropped, then stemmed)
  are focus terms: sentences containing more distinct focus terms are kept before the others.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from llm.sentences import words

SHORTER_FACTOR = 0.5
LONGER_FACTOR = 2.0
# Compounded requests stay within these: a summary of one sentence, or of every sentence.
MIN_FACTOR, MAX_FACTOR = 0.125, 8.0

# A reviewer's feedback: one text, or every round's, oldest first.
Feedback = str | Sequence[str] | None


def feedback_list(feedback: Feedback) -> list[str]:
    """The feedback as a list of non-blank texts, oldest first."""
    if feedback is None:
        return []
    texts = [feedback] if isinstance(feedback, str) else list(feedback)
    return [text.strip() for text in texts if text and text.strip()]


_LONGER = re.compile(
    r"\b(longer|lengthen|expand|elaborate|fuller|too (?:short|brief|terse)|more (?:detail(?:s|ed)?|context|depth))\b"
)
_SHORTER = re.compile(
    r"\b(shorter|shorten|briefer|brief|concise|condense|terse|trim|tighten|too long|too wordy|fewer sentences"
    r"|less detail)\b"
)
# Words about the summary itself, not about the document's content.
_META_WORDS = frozenset(
    [
        "summary",
        "summaries",
        "summarize",
        "summarise",
        "summarized",
        "document",
        "text",
        "sentence",
        "sentences",
        "paragraph",
        "please",
        "make",
        "keep",
        "add",
        "remove",
        "focus",
        "mention",
        "include",
        "cover",
        "emphasize",
        "emphasise",
        "highlight",
        "point",
        "points",
        "instead",
        "rather",
        "version",
        "revise",
        "rewrite",
        "write",
        "need",
        "needs",
        "want",
        "wants",
        "should",
    ]
)


@dataclass(frozen=True)
class Steering:
    """What instructions and feedback ask of the offline summarizer."""

    length_factor: float = 1.0
    focus_terms: frozenset[str] = frozenset()


def _length_factor(text: str) -> float | None:
    lowered = text.lower()
    longer = bool(_LONGER.search(lowered))
    shorter = bool(_SHORTER.search(_LONGER.sub(" ", lowered)))  # "too brief" asks for more, not less
    if longer == shorter:
        return None
    return LONGER_FACTOR if longer else SHORTER_FACTOR


@cache
def _stemmer_and_stop_words() -> tuple[Callable[[str], str], frozenset[str]]:
    from sumy.nlp.stemmers import Stemmer  # type: ignore[import-untyped]
    from sumy.utils import get_stop_words  # type: ignore[import-untyped]

    return Stemmer("english"), frozenset(get_stop_words("english"))


@lru_cache(maxsize=65536)  # a document repeats its words; the Snowball stemmer is slow Python
def stem(word: str) -> str:
    """The English stem of a word, lower case ("Budgets" -> "budget")."""
    stemmer, _ = _stemmer_and_stop_words()
    return str(stemmer(word.lower()))


def focus_terms(text: str) -> frozenset[str]:
    """Stems of the content words of `text`, without the words that ask for a length."""
    _, stop_words = _stemmer_and_stop_words()
    lowered = _SHORTER.sub(" ", _LONGER.sub(" ", text.lower()))
    return frozenset(stem(w) for w in words(lowered) if w not in stop_words and w not in _META_WORDS)


def read_steering(*, instructions: str | None, feedback: Feedback) -> Steering:
    """Combine instructions and feedback (every round's, oldest first). The feedback's length
    requests compound, and decide over the instructions'; focus terms add up."""
    rounds = feedback_list(feedback)
    found = [factor for factor in map(_length_factor, rounds) if factor is not None]
    if found:
        factor = 1.0
        for each in found:
            factor = min(MAX_FACTOR, max(MIN_FACTOR, factor * each))
    else:
        factor = (_length_factor(instructions) if instructions else None) or 1.0
    terms = frozenset().union(*(focus_terms(text) for text in [instructions or "", *rounds] if text))
    return Steering(length_factor=factor, focus_terms=terms)
