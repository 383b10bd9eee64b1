"""Checks every text and JSON value gets where it enters (the API, the forms, the admin), so that
a value SQLite or PostgreSQL would refuse, or store and then fail to read back, is refused at once
with an error naming it, instead of failing a write later.

What the two databases do not both take: NUL characters (PostgreSQL text and jsonb), lone UTF-16
surrogates (not encodable as UTF-8: SQLite stores them and reads break later, PostgreSQL refuses
them), non-finite numbers (JSON has none; jsonb refuses them) and deep nesting (SQLite's JSON
functions give up at 1,000 levels, Python's parser near its recursion limit).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from approvals.errors import InvalidValueError

# Deeper than any metadata or callback result we have a use for, well under every parser's limit.
MAX_JSON_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")
# A letter or a digit in any script (\w without the underscore).
_WORD_CHARACTER = re.compile(r"[^\W_]")
NO_WORDS_MESSAGE = (
    "The document has no words to summarize: it is only punctuation, symbols or emoji. "
    "Submit text with at least one letter or digit."
)

Location = Sequence[str | int]


def _where(loc: Location) -> str:
    return ".".join(str(part) for part in loc) or "the value"


def check_text(value: str, loc: Location) -> None:
    """Raises InvalidValueError if `value` holds a NUL character or a lone surrogate."""
    if "\x00" in value:
        raise InvalidValueError(f"{_where(loc)} contains a NUL character", loc=loc, kind="nul_character")
    if _SURROGATE.search(value):
        raise InvalidValueError(
            f"{_where(loc)} contains a lone surrogate (not valid Unicode text)", loc=loc, kind="lone_surrogate"
        )


def check_has_words(value: str, loc: Location) -> None:
    """Raises InvalidValueError if `value` has no letter or digit in any script ("... !!! ???",
    "----", emoji only): it has no sentence a summarizer could return, so it is refused at submit
    rather than summarized into its own punctuation."""
    if not _WORD_CHARACTER.search(value):
        raise InvalidValueError(NO_WORDS_MESSAGE, loc=loc, kind="no_words")


def check_json(value: Any, loc: Location = (), *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raises InvalidValueError for a value both databases cannot store as JSON: a non-finite
    number, a text (or key) check_text refuses, nesting deeper than `max_depth`, a non-JSON type."""
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(value, tuple(loc), 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= max_depth:
                raise InvalidValueError(
                    f"{_where(path)} is nested deeper than {max_depth} levels", loc=path, kind="too_deep"
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InvalidValueError(f"{_where(path)} has a key that is not text", loc=path, kind="type")
                    check_text(key, (*path, key))
                    stack.append((child, (*path, key), depth + 1))
            else:
                stack.extend((child, (*path, i), depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            check_text(item, path)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidValueError(
                    f"{_where(path)} is not a finite number ({item})", loc=path, kind="non_finite_number"
                )
        elif item is not None and not isinstance(item, (bool, int)):
            raise InvalidValueError(f"{_where(path)} is not a JSON value", loc=path, kind="type")
