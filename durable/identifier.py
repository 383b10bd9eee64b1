"""Deterministic operation ids: the n-th operation of a context, hashed with the context's id.

The same scheme as the official SDK (blake2b of "<parent id>-<n>", or of "<n>" at the root,
as 64 hex characters), so journals and ids compare one to one.
"""

from __future__ import annotations

import hashlib


def operation_id(parent_id: str | None, counter: int) -> str:
    raw = f"{parent_id}-{counter}" if parent_id else str(counter)
    return hashlib.blake2b(raw.encode()).hexdigest()[:64]
