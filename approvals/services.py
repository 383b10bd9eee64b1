"""Writes of the approval product: submitting documents and deciding reviews."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from approvals import webhooks
from approvals.errors import (
    InvalidDecisionError,
    ReviewAlreadyDecidedError,
    ReviewerIsSubmitterError,
    ReviewExpiredError,
)
from approvals.models import Decision, Document, DocumentStatus, PublishedSummary, Review
from durable import clock
from durable.client import send_callback_success
from durable.exceptions import CallbackAlreadyCompletedError, CallbackExpiredError, CallbackNotFoundError


@transaction.atomic
def document_submit(
    *,
    title: str,
    text: str,
    submitter: AbstractBaseUser,
    metadata: dict[str, Any] | None = None,
    callback_url: str = "",
    webhook_key_id: str = "",
) -> Document:
    """Store a document and start its summarize-approve-persist execution (after commit).

    With a `callback_url`, the outcome is posted there, signed with the signing secret of
    `webhook_key_id` (the API token's public id). Raises CallbackURLError; nothing is stored then.
    """
    from approvals.workflows import summarize_approve_persist
    from durable.client import start_execution

    if callback_url:
        webhooks.check_callback_url(callback_url)
    document = Document.objects.create(
        title=title.strip(),
        text=text,
        submitter=submitter,
        metadata=metadata or {},
        callback_url=callback_url,
        webhook_key_id=webhook_key_id,
    )
    event: dict[str, Any] = {"document_id": document.pk}
    if callback_url:
        event["notify"] = True
    execution = start_execution(summarize_approve_persist, event, execution_name=f"document-{document.pk}")
    document.execution_id = execution.pk
    document.save(update_fields=["execution_id"])
    return document


def review_decide(review: Review, *, reviewer: AbstractBaseUser, decision: str, comment: str = "") -> Review:
    """Record a reviewer's decision and complete the review's callback, so the workflow resumes.

    Raises InvalidDecisionError, ReviewerIsSubmitterError, ReviewAlreadyDecidedError,
    ReviewExpiredError; when it raises, nothing changed.
    """
    if decision not in Decision.values:
        raise InvalidDecisionError(f"decision must be one of {', '.join(Decision.values)}, not {decision!r}")
    comment = comment.strip()
    if decision == Decision.REVISE and not comment:
        raise InvalidDecisionError("a revision request needs feedback for the next summary")
    with transaction.atomic():
        review = Review.objects.select_for_update().select_related("document").get(pk=review.pk)
        if review.document.submitter_id == reviewer.pk:
            raise ReviewerIsSubmitterError("you cannot review a document you submitted")
        if not review.is_open:
            raise ReviewAlreadyDecidedError(f"this review was already decided ({review.get_decision_display()})")
        now = clock.now()  # the engine's clock, which set the deadline
        if review.expires_at and now >= review.expires_at:
            raise ReviewExpiredError("this review expired before a decision was made")
        review.decision = decision
        review.reviewer = reviewer  # type: ignore[assignment]
        review.comment = comment
        review.decided_at = now
        review.save(update_fields=["decision", "reviewer", "comment", "decided_at"])
        if decision == Decision.APPROVED:
            document_set_status(review.document_id, DocumentStatus.PUBLISHING)
        payload = {"decision": decision, "comment": comment, "reviewer_id": reviewer.pk, "review_id": review.pk}
        try:
            send_callback_success(review.callback_id, json.dumps(payload))
        except CallbackAlreadyCompletedError as exc:
            raise ReviewAlreadyDecidedError("this review was already decided") from exc
        except (CallbackExpiredError, CallbackNotFoundError) as exc:
            raise ReviewExpiredError("this review expired before a decision was made") from exc
    return review


def document_set_status(document_id: int, status: str, detail: str = "") -> None:
    Document.objects.filter(pk=document_id).update(status=status, status_detail=detail, updated_at=timezone.now())


def review_open(
    *,
    document_id: int,
    round_number: int,
    summary: dict[str, Any],
    callback_id: str,
    expires_at: Any,
    detail: str = "",
) -> Review:
    """Create (or refresh: a retried submitter, or a review re-opened after a decision that could
    not be used) the review of one round; the document awaits it."""
    with transaction.atomic():
        review, _ = Review.objects.update_or_create(
            document_id=document_id,
            round=round_number,
            defaults={
                "summary": summary["text"],
                "summary_provider": summary["provider"],
                "summary_model": summary["model"],
                "callback_id": callback_id,
                "expires_at": expires_at,
            },
        )
        document_set_status(document_id, DocumentStatus.AWAITING_REVIEW, detail)
    return review


def review_record_outside_decision(*, document_id: int, round_number: int, decision: str, comment: str) -> int:
    """Record on the review a decision that completed its callback outside the reviewers' UI
    (over the API or in the admin); nobody in particular is its reviewer. Returns the review's id."""
    with transaction.atomic():
        review = Review.objects.select_for_update().get(document_id=document_id, round=round_number)
        if review.is_open:
            review.decision = decision
            review.comment = comment
            review.decided_at = clock.now()
            review.save(update_fields=["decision", "comment", "decided_at"])
        if decision == Decision.APPROVED:
            document_set_status(document_id, DocumentStatus.PUBLISHING)
    return review.pk


def summary_publish(*, document_id: int, review_id: int) -> int:
    """Persist the approved summary (inside the step's transaction, so exactly once)."""
    review = Review.objects.select_related("reviewer").get(pk=review_id, document_id=document_id)
    published = PublishedSummary.objects.create(
        document_id=document_id, review=review, text=review.summary, reviewer=review.reviewer
    )
    document_set_status(document_id, DocumentStatus.PUBLISHED)
    return published.pk


def document_notify(document_id: int) -> int:
    """Post the document's outcome to its callback_url, signed; returns the receiver's status.

    Raises CallbackURLError, WebhookRefusedError (permanent), WebhookDeliveryError (retryable).
    """
    from approvals.selectors import document_outcome

    document = Document.objects.get(pk=document_id)
    event = f"document.{document.status}"
    delivery_id = f"{document.public_id}-{document.status}"  # the same on every retry: receivers dedupe
    payload = {"event": event, "document": document_outcome(document)}
    key_id = document.webhook_key_id or f"user-{document.submitter_id}"
    return webhooks.deliver(
        document.callback_url,
        payload,
        secret=webhooks.signing_secret(key_id),
        event=event,
        delivery_id=delivery_id,
    )
