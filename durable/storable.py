"""What the journal can store: checked once, where a value enters, never found out at a write.

SQLite stores nearly anything; PostgreSQL refuses NUL characters in text, lone surrogates
(which have no UTF-8 form, so no driver can send them), NaN and infinities in jsonb, and text
longer than a column. A value found out only at the write fails every invocation that retries
it. So a result or a name that cannot be stored fails its operation at once with an error that
says why; an error message is never refused: its unstorable characters are escaped instead.

Plain Python: part of the replay core.
"""

from __future__ import annotations

import math
from typing import Any

# Operation names (and the names a wait_for_callback derives from its own) fit this column.
MAX_NAME_LENGTH = 256
# Error data nested deeper than this is stored as its text.
_MAX_DEPTH = 32


def unstorable_reason(text: str) -> str | None:
    """Why `text` cannot be stored as it is, or None if it can."""
    if "\x00" in text:
        return f"it contains a NUL character (at position {text.index(chr(0))})"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            where = f"{text[exc.start]!a} at position {exc.start}"
            return f"it contains a lone surrogate ({where}), which has no UTF-8 form"
    return None


def utf8_size(text: str) -> int:
    """The size of `text` in UTF-8, for text `unstorable_reason` accepted."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def escape(text: str) -> str:
    """`text` with NUL characters and lone surrogates written as backslash escapes."""
    if text.isascii() and "\x00" not in text:
        return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def storable_json(value: Any, depth: int = 0) -> Any:
    """`value` as JSON both databases store: strings escaped, non-finite numbers and other
    objects as text, nesting capped."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth >= _MAX_DEPTH:
        return escape(repr(value))
    if isinstance(value, (list, tuple)):
        return [storable_json(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {escape(str(k)): storable_json(v, depth + 1) for k, v in value.items()}
    return escape(str(value))
