"""Errors of the approval services, each with a message a user can act on."""


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
