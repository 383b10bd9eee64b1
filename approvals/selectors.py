"""Reads of the approval product."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Max, QuerySet
from django.db.models.functions import Substr

from approvals.models import FINAL_STATUSES, Document, DocumentEvent, DocumentStatus, PublishedSummary, Review
from durable.client import Execution, OperationView, get_execution, list_operations
from durable.exceptions import ExecutionNotFoundError

REVIEWER_PERMISSION = "approvals.decide_review"


def user_is_reviewer(*, user: User | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.has_perm(REVIEWER_PERMISSION))


def review_list_queue(*, user: User) -> QuerySet[Review]:
    """Open reviews the user may decide (not on documents they submitted), newest first.

    A review whose document no longer awaits it (expired, say) is not in the queue even though
    nobody decided it.
    """
    return (
        Review.objects.filter(decision="", document__status=DocumentStatus.AWAITING_REVIEW)
        .exclude(document__submitter=user)
        .select_related("document", "document__submitter")
        .order_by("-created_at", "-pk")
    )


def review_queue_version(*, user: User) -> str:
    """A cheap fingerprint of the queue: it changes whenever a review joins or leaves it.

    Reviews only join with a higher id than any before them, and leaving lowers the count, so
    (count, highest id) changes on every change of membership. One aggregate query.
    """
    summary = review_list_queue(user=user).order_by().aggregate(count=Count("pk"), top=Max("pk"))
    return f"{summary['count']}.{summary['top'] or 0}.{_minute()}"


def document_list_version(*, user: User) -> str:
    """A cheap fingerprint of the documents the user sees: new ones raise the count, and every
    change of status moves the latest `updated_at`. One aggregate query."""
    summary = document_list_visible(user=user).order_by().aggregate(count=Count("pk"), last=Max("updated_at"))
    last = summary["last"].timestamp() if summary["last"] else 0
    return f"{summary['count']}.{last}.{_minute()}"


def _minute() -> int:
    """Part of every version, so ages on screen ("5 minutes ago") refresh once a minute."""
    return int(time.time() // 60)


def document_list_visible(*, user: User) -> QuerySet[Document]:
    """Reviewers see every document; everyone else sees the documents they submitted."""
    documents = Document.objects.select_related("submitter")
    return documents if user_is_reviewer(user=user) else documents.filter(submitter=user)


def document_count_by_status(*, user: User) -> list[tuple[str, str, int]]:
    """(status, label, count) for every status, in the workflow's order, zero included."""
    rows = document_list_visible(user=user).order_by().values_list("status").annotate(n=Count("pk"))
    counts = dict(rows)
    return [(value, label, counts.get(value, 0)) for value, label in DocumentStatus.choices]


def review_list_of_document(*, document: Document) -> QuerySet[Review]:
    return document.reviews.select_related("reviewer").order_by("round")


@dataclass(frozen=True)
class TimelineEntry:
    """One operation of a document's execution, as the document page shows it."""

    name: str
    type: str
    status: str
    attempt: int
    depth: int
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def state(self) -> str:
        """The status in words: a callback or wait that has begun is "waiting"."""
        if self.status == "STARTED" and self.type in {"callback", "wait", "wait for callback"}:
            return "waiting"
        return self.status.replace("_", " ").lower()

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


def execution_get_timeline(*, execution_id: object) -> tuple[Execution | None, list[TimelineEntry]]:
    """The execution and its operations in the order they began, children under their parent."""
    if not execution_id:
        return None, []
    try:
        execution = get_execution(str(execution_id), include_data=False)
    except ExecutionNotFoundError:
        return None, []
    return execution, [_entry(view) for view in list_operations(execution.pk)]


def execution_get_version(*, execution_id: object) -> str:
    """What changes whenever the execution does (status or any write): for polling. One query."""
    if not execution_id:
        return ""
    try:
        execution = get_execution(str(execution_id), include_data=False)
    except ExecutionNotFoundError:
        return ""
    return f"{execution.updated_at.timestamp()}:{execution.status}"


def _entry(view: OperationView) -> TimelineEntry:
    return TimelineEntry(
        name=view.name or view.sub_type or view.type.lower(),
        type=_words(view.sub_type or view.type.title()),
        status=view.status,
        attempt=view.attempt,
        depth=view.depth,
        started_at=view.started_at,
        ended_at=view.ended_at,
    )


def _words(camel: str) -> str:
    """ "WaitForCallback" -> "wait for callback"."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", camel).lower()


def document_get_text(*, document_id: int) -> str:
    return Document.objects.values_list("text", flat=True).get(pk=document_id)


def document_get_title(*, document_id: int) -> str:
    """The document's title: the offline summarizer prefers sentences about it."""
    return str(Document.objects.values_list("title", flat=True).get(pk=document_id))


def document_get_passage(*, document_id: int, start: int, end: int) -> str:
    """Characters [start, end) of the document's text, cut by the database (a long document is
    not read whole for each of its parts)."""
    passage = Substr("text", start + 1, end - start)  # SQL counts characters from 1
    return str(Document.objects.annotate(passage=passage).values_list("passage", flat=True).get(pk=document_id))


def execution_list_held(execution_ids: list[str]) -> set[str]:
    """The engine's retention hook (settings.DURABLE["RETENTION_HOLD"]): of these expired
    executions, those of documents not yet in a final state, whose journal the product still
    needs (an ended execution whose end the document has not reached yet). One query."""
    held = (
        Document.objects.filter(execution_id__in=[UUID(str(pk)) for pk in execution_ids])
        .exclude(status__in=FINAL_STATUSES)
        .values_list("execution_id", flat=True)
    )
    return {str(pk) for pk in held}


def execution_is_started_by(*, user: User, execution_id: UUID | str) -> bool:
    """Whether `user` started the execution: it runs the workflow of a document they submitted."""
    return Document.objects.filter(execution_id=execution_id, submitter=user).exists()


def review_get_by_callback(*, callback_id: str) -> Review | None:
    """The review whose decision completes `callback_id`, if it is a review's callback."""
    return Review.objects.select_related("document").filter(callback_id=callback_id).first()


def review_get_decision(*, document_id: int, round_number: int) -> dict[str, Any] | None:
    """The round's decision as recorded on its review, if a reviewer made it (the UI or the API
    record it before completing the callback); None if the review is still open."""
    review = Review.objects.filter(document_id=document_id, round=round_number).first()
    if review is None or review.is_open or review.reviewer_id is None:
        return None
    return {
        "review_id": review.pk,
        "decision": review.decision,
        "comment": review.comment,
        "reviewer_id": review.reviewer_id,
        "start_over": review.start_over,
    }


def document_list_submitted(
    *,
    user: User,
    status: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Document]:
    """Documents the user submitted, newest first, optionally filtered."""
    documents = Document.objects.filter(submitter=user)
    if status:
        documents = documents.filter(status=status)
    if created_after:
        documents = documents.filter(created_at__gte=created_after)
    if created_before:
        documents = documents.filter(created_at__lt=created_before)
    return documents.order_by("-created_at", "-pk")


def document_get_outcome(*, document: Document) -> dict[str, Any]:
    """Where a document stands, as the API and its webhooks tell it (JSON-ready values)."""
    latest = document.reviews.select_related("reviewer").order_by("-round").first()
    decided = document.reviews.exclude(decision="").order_by("-round").first()
    published = PublishedSummary.objects.filter(document=document).first()
    return {
        "id": str(document.public_id),
        "title": document.title,
        "status": document.status,
        "status_detail": document.status_detail,
        "execution_id": str(document.execution_id) if document.execution_id else None,
        "metadata": document.metadata,
        "callback_url": document.callback_url or None,
        "rounds": latest.round if latest else 0,
        "summary": latest.summary if latest else None,
        "decision": decided.decision if decided else None,
        "reviewer_comment": decided.comment if decided else None,
        "published_text": published.text if published else None,
        "published_at": published.published_at.isoformat() if published else None,
        "created_at": document.created_at.isoformat(),
        "updated_at": document.updated_at.isoformat(),
    }


def review_remind_recipients(review: Review) -> list[str]:
    """Whom a reminder about a waiting review goes to: the e-mail addresses of the active
    reviewers who may decide it (not its submitter). The one place to change it (a claimant)."""
    from django.contrib.auth import get_user_model
    from django.db.models import Q

    users = get_user_model().objects.filter(is_active=True).exclude(email="").exclude(pk=review.document.submitter_id)
    may_decide = Q(is_superuser=True) | Q(user_permissions__codename="decide_review")
    may_decide |= Q(groups__permissions__codename="decide_review")
    return sorted(set(users.filter(may_decide).values_list("email", flat=True)))


def admin_recipients() -> list[str]:
    """The admins told of a review left waiting: active staff and superusers with an e-mail."""
    from django.contrib.auth import get_user_model
    from django.db.models import Q

    admins = get_user_model().objects.filter(Q(is_staff=True) | Q(is_superuser=True), is_active=True)
    return sorted(set(admins.exclude(email="").values_list("email", flat=True)))


def document_list_events(*, document: Document) -> QuerySet[DocumentEvent]:
    """What happened to the document that its page lists (reminders, escalations), oldest first."""
    return document.events.order_by("created_at", "pk")
