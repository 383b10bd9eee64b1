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
    # Webhooks (a document's `callback_url`): plain http is for development only; loopback and
    # private addresses are refused unless allowed (tests and single-host setups allow them).
    "WEBHOOK_ALLOW_HTTP": False,
    "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": False,
    # Key the per-token signing secrets are derived from; empty: derived from SECRET_KEY.
    "WEBHOOK_SIGNING_KEY": "",
    "WEBHOOK_TIMEOUT_SECONDS": 10,
    # A PEM bundle of CAs to trust for https callback URLs instead of the system's; empty: system.
    "WEBHOOK_CA_FILE": "",
    # Delivery attempts of one webhook (the first and its retries, with exponential backoff).
    "WEBHOOK_MAX_ATTEMPTS": 6,
    "WEBHOOK_RETRY_INITIAL_SECONDS": 2,
    "WEBHOOK_RETRY_MAX_SECONDS": 300,
}


def get(name: str) -> Any:
    return {**DEFAULTS, **getattr(settings, "APPROVALS", {})}[name]
