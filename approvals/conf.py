"""The product's settings, declared once: `settings.APPROVALS[key]`, else `APPROVALS_<KEY>`, else
the default (see durable.conf.AppSettings). The project's settings module restates none of them."""

from __future__ import annotations

from typing import Any

from durable.conf import AppSettings, Setting, boolean

SETTINGS = AppSettings(
    "APPROVALS",
    {
        "REVIEW_TIMEOUT_SECONDS": Setting(
            7 * 24 * 3600, "APPROVALS_REVIEW_TIMEOUT_SECONDS", int, "How long a review waits for a decision."
        ),
        # While a review waits: remind its reviewers after REMIND_AFTER seconds without a decision,
        # tell the admins after ESCALATE_AFTER (both on durable timers; 0: never). A review still
        # expires after REVIEW_TIMEOUT_SECONDS; a reminder due after that is not sent.
        "REMIND_AFTER": Setting(2 * 24 * 3600, "APPROVALS_REMIND_AFTER", int, "Seconds before reviewers are reminded."),
        "ESCALATE_AFTER": Setting(
            5 * 24 * 3600, "APPROVALS_ESCALATE_AFTER", int, "Seconds before the admins are told of a waiting review."
        ),
        "MAX_ROUNDS": Setting(
            3, "APPROVALS_MAX_ROUNDS", int, "Summaries a document may get (the first and its revisions)."
        ),
        "MAX_DOCUMENT_BYTES": Setting(
            2_000_000, "APPROVALS_MAX_DOCUMENT_BYTES", int, "The largest document (UTF-8 bytes), browser or API."
        ),
        # Parts of a long document summarized at once (context.map's max_concurrency).
        "PART_CONCURRENCY": Setting(4, "APPROVALS_PART_CONCURRENCY", int),
        # Webhooks (a document's `callback_url`): plain http is for development only; loopback and
        # private addresses are refused unless allowed (tests and single-host setups allow them).
        "WEBHOOK_ALLOW_HTTP": Setting(lambda settings: bool(settings.DEBUG), "APPROVALS_WEBHOOK_ALLOW_HTTP", boolean),
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": Setting(False, "APPROVALS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES", boolean),
        # Key the per-token signing secrets are derived from; empty: derived from SECRET_KEY
        # (rotating that key then changes every token's signing secret).
        "WEBHOOK_SIGNING_KEY": Setting("", "APPROVALS_WEBHOOK_SIGNING_KEY"),
        "WEBHOOK_TIMEOUT_SECONDS": Setting(10.0, "APPROVALS_WEBHOOK_TIMEOUT_SECONDS", float),
        # A PEM bundle of CAs to trust for https callback URLs instead of the system's; empty: system.
        "WEBHOOK_CA_FILE": Setting("", "APPROVALS_WEBHOOK_CA_FILE"),
        # Delivery attempts of one webhook (the first and its retries, with exponential backoff).
        "WEBHOOK_MAX_ATTEMPTS": Setting(6, "APPROVALS_WEBHOOK_MAX_ATTEMPTS", int),
        "WEBHOOK_RETRY_INITIAL_SECONDS": Setting(2, "APPROVALS_WEBHOOK_RETRY_INITIAL_SECONDS", int),
        "WEBHOOK_RETRY_MAX_SECONDS": Setting(300, "APPROVALS_WEBHOOK_RETRY_MAX_SECONDS", int),
        # A reviewer's claim on a review lapses after this many hours without a decision.
        "CLAIM_HOURS": Setting(4.0, "APPROVALS_CLAIM_HOURS", float),
    },
)


def get(name: str) -> Any:
    return SETTINGS.get(name)
