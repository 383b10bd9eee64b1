"""Errors of the approval services, each with a message a user can act on."""

from __future__ import annotations

from collections.abc import Sequence


class ApprovalError(Exception):
    pass


class ReviewAlreadyDecidedError(ApprovalError):
    """Someone decided this review already; nothing was changed."""


class ReviewExpiredError(ApprovalError):
    """The review passed its deadline; the document has expired."""


class ReviewerIsSubmitterError(ApprovalError):
    """Reviewers cannot decide on documents they submitted."""


class InvalidDecisionError(ApprovalError):
    """The decision is not one of approved, rejected, revise (or a revision lacks feedback)."""


class CallbackURLError(ApprovalError):
    """A webhook `callback_url` is not allowed (not https, or it points at a private address)."""


class WebhookDeliveryError(ApprovalError):
    """A webhook could not be delivered this time (network error, 5xx, 429); worth retrying."""


class WebhookRefusedError(ApprovalError):
    """The receiver refused a webhook for good (a 4xx other than 408 and 429); not retried."""


class InvalidValueError(ApprovalError):
    """A text or JSON value neither database could store as given (NUL, lone surrogate,
    non-finite number, too deep); `loc` says where it is, `kind` what is wrong."""

    def __init__(self, message: str, *, loc: Sequence[str | int] = (), kind: str = "invalid") -> None:
        super().__init__(message)
        self.loc = list(loc)
        self.kind = kind


class ReviewClosedError(ApprovalError):
    """The document's execution ended (stopped, timed out, failed) before a decision was made."""


class NotAllowedToDecideError(ApprovalError):
    """The person (or the API token's owner) may not decide reviews."""


class ReviewClaimedError(ApprovalError):
    """Another reviewer holds a live claim on this review; deciding it needs a confirmation."""
