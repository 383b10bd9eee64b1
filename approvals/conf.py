"""The product's settings, read lazily from `settings.APPROVALS`."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # How long a review waits for a decision before the document expires.
    "REVIEW_TIMEOUT_SECONDS": 7 * 24 * 3600,
    # Summaries a document may get (the first and its revisions) before it is rejected.
    "MAX_ROUNDS": 3,
    # The largest document (UTF-8 bytes) the browser form accepts.
    "MAX_DOCUMENT_BYTES": 200_000,
}


def get(name: str) -> Any:
    return {**DEFAULTS, **getattr(settings, "APPROVALS", {})}[name]
