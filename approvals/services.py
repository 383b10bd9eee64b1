"""Writes of the approval product: submitting documents and deciding reviews."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from approvals import conf, selectors, webhooks
from approvals.errors import (
    InvalidDecisionError,
    NotAllowedToDecideError,
    ReviewAlreadyDecidedError,
    ReviewClaimedError,
    ReviewClosedError,
    ReviewerIsSubmitterError,
    ReviewExpiredError,
)
from approvals.models import (
    INTERRUPTIONS,
    OUTCOMES,
    AuditEntry,
    Decision,
    Document,
    DocumentStatus,
    PublishedSummary,
    Review,
)
from approvals.validators import check_has_words, check_json, check_text
from durable import clock, metrics
from durable.client import send_callback_success, set_execution_attention, start_execution
from durable.exceptions import CallbackAlreadyCompletedError, CallbackExpiredError, CallbackNotFoundError

REVIEWER_PERMISSION = "approvals.decide_review"
# The durable functions of approvals.workflows, started by their registered names (the workflows
# import this module, never the other way).
DOCUMENT_WORKFLOW = "summarize_approve_persist"
WEBHOOK_WORKFLOW = "document_webhook"
# What the document says when its execution ended outside the workflow.
ENDED_BY = {
    "STOPPED": (DocumentStatus.STOPPED, "its workflow was stopped"),
    "TIMED_OUT": (DocumentStatus.TIMED_OUT, "its workflow ran past its time limit"),
    "FAILED": (DocumentStatus.FAILED, "its workflow failed"),
}


@transaction.atomic
def document_submit(
    *,
    title: str,
    text: str,
    submitter: User,
    metadata: dict[str, Any] | None = None,
    callback_url: str = "",
    webhook_key_id: str = "",
) -> Document:
    """Store a document and start its summarize-approve-persist execution (after commit).

    With a `callback_url`, the outcome is posted there, signed with the signing secret of
    `webhook_key_id` (the API token's public id). Raises CallbackURLError, InvalidValueError (a
    text with no letter or digit included);
    nothing is stored then.
    """
    check_text(title, ["title"])
    check_text(text, ["text"])
    check_has_words(text, ["text"])
    check_json(metadata or {}, ["metadata"])
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
    # "in_parts": the workflow splits a long document and summarizes its parts with context.map;
    # executions started before it existed do without (their journals have no such steps).
    event: dict[str, Any] = {"document_id": document.pk, "in_parts": True}
    # Likewise: feedback kept over the rounds, and the review's wait raced against reminders,
    # whose times are fixed here, so a change of settings never changes a journal being replayed.
    event["accumulate_feedback"] = True
    event["reminders"] = {
        "remind_after": int(conf.get("REMIND_AFTER")),
        "escalate_after": int(conf.get("ESCALATE_AFTER")),
    }
    if callback_url:
        event["notify"] = True
    execution = start_execution(
        DOCUMENT_WORKFLOW, event, execution_name=f"document-{document.pk}", label=document_label(document.title)
    )
    document.execution_id = execution.pk
    document.save(update_fields=["execution_id"])
    via = " through the API" if webhook_key_id else ""
    document_record_event(document.pk, EVENT_SUBMITTED, submitter, f"submitted “{document.title}”{via}")
    return document


# What the audit trail records (AuditEntry.kind); selectors.EVENT_WORDS says each in words.
EVENT_SUBMITTED = "submitted"
EVENT_SUMMARY = "summary"
EVENT_DECISION = "decision"
EVENT_REVISION = "revision_requested"
EVENT_CLAIM = "claimed"
EVENT_RELEASE = "released"
EVENT_STOP = "stopped"
EVENT_OUTSIDE_DECISION = "outside_decision"
EVENT_OUTCOME = "outcome"
# Longer details are cut: the trail says what happened, the review keeps the whole comment.
AUDIT_DETAIL_CHARS = 1000


def document_record_event(document_id: int, kind: str, actor: User | None, detail: str) -> AuditEntry:
    """Record one event of a document's audit trail: what (`kind`), who (`actor`, None for the
    system) and when (now). The one way entries are written, whoever records them (the pages,
    the API, the workflow's steps, reminders and escalations); inside the caller's transaction
    when there is one, so an event is recorded exactly when its change is."""
    if len(detail) > AUDIT_DETAIL_CHARS:
        detail = detail[: AUDIT_DETAIL_CHARS - 1] + "…"
    return AuditEntry.objects.create(
        document_id=document_id, kind=kind, actor=actor, detail=detail, created_at=clock.now()
    )


def claim_is_live(review: Review) -> bool:
    return selectors.review_claim_is_live(review=review)


def review_claim(review: Review, *, reviewer: User) -> Review:
    """Claim an open review for `reviewer` (taking over a lapsed claim; refreshing their own).

    Raises NotAllowedToDecideError, ReviewerIsSubmitterError, ReviewAlreadyDecidedError,
    ReviewClosedError, ReviewClaimedError (another reviewer's live claim); nothing changes then.
    """
    with transaction.atomic():
        review = _open_review_for(review, reviewer)
        if claim_is_live(review) and review.claimed_by_id != reviewer.pk:
            raise ReviewClaimedError(f"this review is claimed by {review.claimed_by} already")
        review.claimed_by, review.claimed_at = reviewer, timezone.now()
        review.save(update_fields=["claimed_by", "claimed_at"])
        document_record_event(review.document_id, EVENT_CLAIM, reviewer, f"claimed round {review.round}")
    return review


def review_release(review: Review, *, reviewer: User) -> Review:
    """Give up one's own claim. Raises as review_claim; ReviewClaimedError if it is not theirs."""
    with transaction.atomic():
        review = _open_review_for(review, reviewer)
        if review.claimed_by_id != reviewer.pk:
            raise ReviewClaimedError("this review is not claimed by you")
        review.claimed_by, review.claimed_at = None, None
        review.save(update_fields=["claimed_by", "claimed_at"])
        document_record_event(review.document_id, EVENT_RELEASE, reviewer, f"released round {review.round}")
    return review


def _open_review_for(review: Review, reviewer: User) -> Review:
    """The review, locked, if `reviewer` may still act on it (decided work is read-only)."""
    if not reviewer.is_active or not reviewer.has_perm(REVIEWER_PERMISSION):
        raise NotAllowedToDecideError("only reviewers may claim reviews")
    # `of`: PostgreSQL locks no row of an outer join (the claimant may be none).
    review = (
        Review.objects.select_for_update(of=("self", "document"))
        .select_related("document", "claimed_by")
        .get(pk=review.pk)
    )
    if review.document.submitter_id == reviewer.pk:
        raise ReviewerIsSubmitterError("you cannot review a document you submitted")
    if not review.is_open or review.document.is_final:
        raise ReviewAlreadyDecidedError("this review was already decided: decided work is read-only")
    if review.document.status != DocumentStatus.AWAITING_REVIEW:
        raise ReviewClosedError("this review no longer awaits a decision")
    return review


def review_decide(
    review: Review,
    *,
    reviewer: User,
    decision: str,
    comment: str = "",
    override_claim: bool = False,
    via: str = "",
    start_over: bool = False,
) -> Review:
    """Record a reviewer's decision (who and when) and complete the review's callback in one
    transaction, so the workflow resumes. The same rules hold whether it comes from the review
    pages or the API: only reviewers decide, never on a document they submitted.

    `start_over` (a revision request only): the next summary ignores the feedback of earlier
    rounds, which it otherwise keeps honouring.

    Deciding a review another reviewer holds a live claim on needs `override_claim` (the pages
    ask for a confirmation first). `via` names an outside channel ("the API"): the audit trail
    records the decision as an outside one, with `reviewer` (the token's owner) as who.

    Raises InvalidDecisionError, InvalidValueError, NotAllowedToDecideError,
    ReviewerIsSubmitterError, ReviewAlreadyDecidedError, ReviewClosedError, ReviewExpiredError,
    ReviewClaimedError; when it raises, nothing changed.
    """
    if decision not in Decision.values:
        raise InvalidDecisionError(f"decision must be one of {', '.join(Decision.values)}, not {decision!r}")
    check_text(comment, ["comment"])
    comment = comment.strip()
    if decision == Decision.REVISE and not comment:
        raise InvalidDecisionError("a revision request needs feedback for the next summary")
    if not reviewer.is_active or not reviewer.has_perm(REVIEWER_PERMISSION):
        raise NotAllowedToDecideError("only reviewers may decide reviews")
    with transaction.atomic():
        # `of`: PostgreSQL locks no row of an outer join (the claimant may be none).
        review = (
            Review.objects.select_for_update(of=("self", "document"))
            .select_related("document", "claimed_by")
            .get(pk=review.pk)
        )
        if review.document.submitter_id == reviewer.pk:
            raise ReviewerIsSubmitterError("you cannot review a document you submitted")
        if not review.is_open:
            raise ReviewAlreadyDecidedError(f"this review was already decided ({review.get_decision_display()})")
        document = review.document
        if document.status in INTERRUPTIONS:
            why = document.get_status_display().lower()
            raise ReviewClosedError(f"this review was closed: the document's workflow {why} before a decision")
        now = clock.now()  # the engine's clock, which set the deadline
        if document.status == DocumentStatus.EXPIRED or (review.expires_at and now >= review.expires_at):
            raise ReviewExpiredError("this review expired before a decision was made")
        if not override_claim and claim_is_live(review) and review.claimed_by_id != reviewer.pk:
            since = timezone.localtime(review.claimed_at).strftime("%H:%M") if review.claimed_at else ""
            raise ReviewClaimedError(
                f"this review is claimed by {review.claimed_by} (since {since}): confirm to decide it anyway"
            )
        taken_over = claim_is_live(review) and review.claimed_by_id != reviewer.pk
        review.decision = decision
        review.reviewer = reviewer
        review.comment = comment
        review.start_over = bool(start_over) and decision == Decision.REVISE
        review.decided_at = now
        review.save(update_fields=["decision", "reviewer", "comment", "start_over", "decided_at"])
        if decision == Decision.APPROVED:
            document_set_status(review.document_id, DocumentStatus.PUBLISHING)
        _record_decision(review, reviewer, via, taken_over)
        # For the journal's reader; the workflow reads the decision from the review itself.
        payload = {"decision": decision, "comment": comment, "reviewer_id": reviewer.pk, "review_id": review.pk}
        try:
            send_callback_success(review.callback_id, json.dumps(payload))
        except CallbackAlreadyCompletedError as exc:
            raise ReviewAlreadyDecidedError("this review was already decided") from exc
        except (CallbackExpiredError, CallbackNotFoundError) as exc:
            raise ReviewExpiredError("this review expired before a decision was made") from exc
    return review


def _record_decision(review: Review, reviewer: User, via: str, taken_over: bool) -> None:
    words = {Decision.APPROVED: "approved", Decision.REJECTED: "rejected", Decision.REVISE: "asked for a revision of"}
    detail = f"{words[Decision(review.decision)]} round {review.round}"
    if via:
        detail += f" through {via}"
    if taken_over and review.claimed_by is not None:
        detail += f" (claimed by {review.claimed_by})"
    if review.comment:
        detail += f": “{review.comment}”"
    kind = EVENT_OUTSIDE_DECISION if via else EVENT_REVISION if review.decision == Decision.REVISE else EVENT_DECISION
    document_record_event(review.document_id, kind, reviewer, detail)


def document_set_status(document_id: int, status: str, detail: str = "") -> None:
    Document.objects.filter(pk=document_id).update(status=status, status_detail=detail, updated_at=timezone.now())
    if status in OUTCOMES:  # the workflow's end: published, rejected, expired
        words = f"{DocumentStatus(status).label}: {detail}" if detail else DocumentStatus(status).label
        document_record_event(document_id, EVENT_OUTCOME, None, words)


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
        review, created = Review.objects.update_or_create(
            document_id=document_id,
            round=round_number,
            defaults={
                "summary": summary["text"],
                "summary_provider": summary["provider"],
                "summary_model": summary["model"],
                "parts": summary.get("parts", []),
                "callback_id": callback_id,
                "expires_at": expires_at,
            },
        )
        document_set_status(document_id, DocumentStatus.AWAITING_REVIEW, detail)
        if created:  # a retried submitter refreshes the round: one entry per round
            source = summary["provider"] or "the summarizer"
            document_record_event(document_id, EVENT_SUMMARY, None, f"summary round {round_number} by {source}")
    return review


def document_follow_execution(
    *, execution_id: str, status: str, previous_status: str, error: dict[str, Any] | None, timestamp: Any
) -> Document | None:
    """Bring a document in line with its execution's new status (the engine's signal, after the
    commit that changed it): an end met outside the workflow (stopped, timed out, failed) makes
    the document final with a status that says so, which takes its review out of the queue, and
    tells the client (webhook) if it asked; a redrive of a failed execution brings it back.

    Idempotent: news of a change the document already followed (or older) changes nothing; the
    engine sends each change at least once, in no guaranteed order.
    Returns the document if it changed, None for executions that are not a document's.
    """
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(execution_id=execution_id).first()
        if document is None:
            return None
        last = document.execution_status_at
        stale = timestamp < last or (timestamp == last and status == document.execution_status) if last else False
        # The news arrive at least once and in any order: the start (no previous status) is news
        # only while nothing else is known (its timestamp may equal the next change's).
        if stale or (last is not None and not previous_status):
            return None  # news of a change already followed, or older than it
        document.execution_status, document.execution_status_at = status, timestamp
        fields = ["execution_status", "execution_status_at", "updated_at"]
        ended = ENDED_BY.get(status)
        if ended is not None and document.status not in OUTCOMES:
            new_status, why = ended
            if document.status != new_status:  # a failure the workflow recorded keeps its own detail
                message = str((error or {}).get("ErrorMessage") or "")
                document.status_detail = (f"{why}: {message}" if message else why)[:500]
                fields.append("status_detail")
            document.status = new_status
            fields.append("status")
            document_record_event(document.pk, EVENT_STOP, None, document.status_detail or why)
            if document.callback_url:  # started in this transaction: told exactly when it changed
                document_webhook_start(document.pk, new_status)
        elif status == "RUNNING" and previous_status == "FAILED" and document.status in INTERRUPTIONS:
            document.status = DocumentStatus.SUBMITTED
            document.status_detail = "resumed after a failure (redrive): picking up where it stopped"
            fields += ["status", "status_detail"]
        document.save(update_fields=fields)
    return document


def document_webhook_start(document_id: int, status: str) -> None:
    """Tell the client how a document ended, from an execution of its own (retries and all),
    when the document's workflow could not: it was stopped, timed out or failed."""
    event = {"document_id": document_id, "status": str(status)}
    title = Document.objects.filter(pk=document_id).values_list("title", flat=True).first() or ""
    start_execution(
        WEBHOOK_WORKFLOW,
        event,
        execution_name=f"document-{document_id}-{status}-webhook",
        label=document_label(f"webhook: {title}"),
    )


def document_label(title: str) -> str:
    """An execution's label for people (the admin's list): the document's title, one line, at
    most the 200 characters a label keeps."""
    flat = " ".join(title.split())
    return flat if len(flat) <= 200 else flat[:199] + "…"


# The attention an execution gets when its outcome could not be posted to the client.
WEBHOOK_NOT_DELIVERED = "webhook not delivered"


def execution_flag_attention(execution_id: str, text: str) -> None:
    """Mark the execution for an operator's look (the admin's list shows a warning)."""
    set_execution_attention(execution_id, text)


def summary_publish(*, document_id: int, review_id: int) -> int:
    """Persist the approved summary (inside the step's transaction, so exactly once)."""
    review = Review.objects.select_related("reviewer").get(
        pk=review_id, document_id=document_id, decision=Decision.APPROVED
    )
    published = PublishedSummary.objects.create(
        document_id=document_id, review=review, text=review.summary, reviewer=review.reviewer
    )
    document_set_status(document_id, DocumentStatus.PUBLISHED)
    return published.pk


# The clients' webhooks, as the engine's metrics name them beside its own event sinks.
CLIENT_WEBHOOK_SINK = "client-webhook"


def document_notify(document_id: int) -> int:
    """Post the document's outcome to its callback_url, signed; returns the receiver's status.

    Raises CallbackURLError, WebhookRefusedError (permanent), WebhookDeliveryError (retryable).
    """
    from approvals.selectors import document_get_outcome

    document = Document.objects.get(pk=document_id)
    event = f"document.{document.status}"
    delivery_id = f"{document.public_id}-{document.status}"  # the same on every retry: receivers dedupe
    payload = {"event": event, "document": document_get_outcome(document=document)}
    key_id = document.webhook_key_id or f"user-{document.submitter_id}"
    try:
        status = webhooks.deliver(
            document.callback_url,
            payload,
            secret=webhooks.signing_secret(key_id),
            event=event,
            delivery_id=delivery_id,
        )
    except Exception:
        metrics.sink_delivery(CLIENT_WEBHOOK_SINK, False)
        raise
    metrics.sink_delivery(CLIENT_WEBHOOK_SINK, True)
    return status


# What document_record_event records of the workflow's own doing.
EVENT_REMINDER = "reminder"
EVENT_ESCALATION = "escalation"


def review_remind(*, document_id: int, round_number: int, waited: int, escalate: bool = False) -> list[str]:
    """E-mail a reminder about a round's review still waiting for a decision: to its reviewers
    (approvals.selectors.review_remind_recipients), or with `escalate` to the admins; record it.
    `waited`: seconds the review has waited. A review decided meanwhile gets none. Returns the
    recipients (none: nothing sent)."""
    from django.core.mail import send_mail
    from django.urls import reverse

    from approvals import selectors

    review = Review.objects.select_related("document").filter(document_id=document_id, round=round_number).first()
    if review is None or not review.is_open or review.document.status != DocumentStatus.AWAITING_REVIEW:
        return []
    document = review.document
    recipients = selectors.admin_recipients() if escalate else selectors.review_remind_recipients(review)
    waiting = _in_words(waited)
    where = reverse("approvals:document", args=[document.pk])
    if escalate:
        subject = f"Escalated: “{document_label(document.title)}” has waited {waiting} for a review"
        body = (
            f"The summary of “{document.title}” (round {review.round}) has waited {waiting} for a decision and "
            f"no reviewer has made one. It expires {review.expires_at:%Y-%m-%d %H:%M %Z} unless someone decides.\n\n"
            f"Document page: {where}\n"
        )
    else:
        subject = f"Reminder: “{document_label(document.title)}” awaits your review"
        body = (
            f"The summary of “{document.title}” (round {review.round}) has waited {waiting} for a decision. "
            f"It expires {review.expires_at:%Y-%m-%d %H:%M %Z}.\n\nReview it: {where}\n"
        )
    if recipients:
        send_mail(subject, body, None, recipients)
    kind = EVENT_ESCALATION if escalate else EVENT_REMINDER
    told = "the admins" if escalate else "the reviewers"
    detail = (
        f"round {review.round}, {len(recipients)} of {told} e-mailed"
        if recipients
        else f"round {review.round}, but none of {told} has an e-mail address"
    )
    document_record_event(document.pk, kind, None, detail)
    return recipients


def _in_words(seconds: int) -> str:
    """A span in words, in its largest whole unit ("2 days", "3 hours", "5 minutes")."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"
