"""Reads of the approval product."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, F, Max, Q, QuerySet
from django.db.models.functions import Substr
from django.utils import timezone

from approvals import conf
from approvals.models import FINAL_STATUSES, AuditEntry, Document, DocumentStatus, PublishedSummary, Review
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


# The queue's orders: (key, words, ORDER BY); each is served by an index on Review.
QUEUE_ORDERS = {
    "newest": ("Newest first", ("-created_at", "-pk")),
    "oldest": ("Oldest first", ("created_at", "pk")),
    "deadline": ("Deadline, soonest first", (F("expires_at").asc(nulls_last=True), "created_at", "pk")),
}
QUEUE_PAGE_SIZE = 50


@dataclass(frozen=True)
class QueueQuery:
    """What the reviewer asked of the queue: order, search words, round, submitter's username."""

    order: str = "newest"
    search: str = ""
    round: int | None = None
    submitter: str = ""

    @classmethod
    def from_params(cls, params: Any) -> QueueQuery:
        """From a request's GET; anything unknown or malformed is ignored (the default)."""
        order = str(params.get("order", ""))
        raw_round = str(params.get("round", ""))
        return cls(
            order=order if order in QUEUE_ORDERS else "newest",
            search=" ".join(str(params.get("q", "")).split())[:200],
            round=int(raw_round) if raw_round.isdigit() and 0 < len(raw_round) < 4 else None,
            submitter=str(params.get("submitter", "")).strip()[:150],
        )

    @property
    def is_filtered(self) -> bool:
        return bool(self.search or self.round or self.submitter)


def review_search_queue(*, user: User, query: QueueQuery) -> QuerySet[Review]:
    """The queue, filtered and ordered as asked: search in title and text (every word, any
    case), round, submitter."""
    reviews = review_list_queue(user=user)
    for word in query.search.split()[:10]:
        reviews = reviews.filter(Q(document__title__icontains=word) | Q(document__text__icontains=word))
    if query.round:
        reviews = reviews.filter(round=query.round)
    if query.submitter:
        reviews = reviews.filter(document__submitter__username=query.submitter)
    return reviews.select_related("claimed_by").order_by(*QUEUE_ORDERS[query.order][1])


def review_queue_count(*, user: User) -> int:
    """Open reviews the user may decide (the tab title shows it)."""
    return review_list_queue(user=user).order_by().count()


def review_queue_submitters(*, user: User) -> list[str]:
    """Usernames of those whose documents wait in the queue, for the submitter filter."""
    names = review_list_queue(user=user).order_by().values_list("document__submitter__username", flat=True)
    return sorted(set(names))


def review_next_in_queue(*, user: User, after: Review | None = None) -> Review | None:
    """The review to go to after deciding one: the oldest open one the user may decide and no
    other reviewer holds a live claim on (one query)."""
    reviews = review_list_queue(user=user).select_related("claimed_by").order_by("created_at", "pk")
    if after is not None:
        reviews = reviews.exclude(pk=after.pk)
    for review in reviews[:50]:
        if review.claimed_by_id in (None, user.pk) or not review_claim_is_live(review=review):
            return review
    return None


def review_queue_neighbours(*, user: User, review: Review) -> dict[str, Review | None]:
    """The reviews just before and after `review` in the queue, oldest first (two indexed
    queries); works for a review that has left the queue too."""
    queue = review_list_queue(user=user).exclude(pk=review.pk)
    after = Q(created_at__gt=review.created_at) | Q(created_at=review.created_at, pk__gt=review.pk)
    before = Q(created_at__lt=review.created_at) | Q(created_at=review.created_at, pk__lt=review.pk)
    return {
        "queue_next": queue.filter(after).order_by("created_at", "pk").first(),
        "queue_prev": queue.filter(before).order_by("-created_at", "-pk").first(),
    }


def review_claim_is_live(*, review: Review) -> bool:
    """Whether someone holds the review: claimed, undecided, within APPROVALS_CLAIM_HOURS."""
    if review.claimed_by_id is None or review.claimed_at is None or not review.is_open:
        return False
    return timezone.now() < review.claimed_at + timedelta(hours=float(conf.get("CLAIM_HOURS")))


def review_claim_expires_at(*, review: Review) -> datetime | None:
    if review.claimed_at is None:
        return None
    return review.claimed_at + timedelta(hours=float(conf.get("CLAIM_HOURS")))


def review_remind_recipients(review: Review) -> list[str]:
    """Who a reminder about this open review goes to: the claimant when the review is claimed
    (and the claim live), else every active reviewer with an e-mail address, except the
    document's submitter. Sorted, no duplicates, no empty addresses."""
    if review_claim_is_live(review=review) and review.claimed_by is not None:
        return [review.claimed_by.email] if review.claimed_by.email else []
    submitter_id = Document.objects.values_list("submitter_id", flat=True).get(pk=review.document_id)
    reviewers = (
        User.objects.filter(is_active=True)
        .filter(
            Q(groups__permissions__codename="decide_review", groups__permissions__content_type__app_label="approvals")
            | Q(user_permissions__codename="decide_review", user_permissions__content_type__app_label="approvals")
            | Q(is_superuser=True)
        )
        .exclude(pk=submitter_id)
        .exclude(email="")
        .values_list("email", flat=True)
        .distinct()
    )
    return sorted(set(reviewers))


# The audit trail's kinds in a reviewer's words (services.EVENT_*).
EVENT_WORDS = {
    "submitted": "Submitted",
    "summary": "Summary written",
    "decision": "Decided",
    "revision_requested": "Revision requested",
    "claimed": "Claimed",
    "released": "Claim released",
    "stopped": "Stopped",
    "outside_decision": "Decided from outside",
    "outcome": "Outcome",
    "reminder": "Reminder sent",
    "escalation": "Escalated",
}


def document_list_events(*, document_id: int) -> QuerySet[AuditEntry]:
    """A document's audit trail, oldest first (one indexed query)."""
    return AuditEntry.objects.filter(document_id=document_id).select_related("actor").order_by("created_at", "pk")


def audit_list_entries(*, user: User) -> QuerySet[AuditEntry]:
    """Every audit entry for staff; for others, those of documents they may see."""
    entries = AuditEntry.objects.select_related("actor", "document").order_by("created_at", "pk")
    if user.is_staff:
        return entries
    return entries.filter(document__in=document_list_visible(user=user).values("pk"))


def review_queue_version(*, user: User) -> str:
    """A cheap fingerprint of the queue: it changes whenever a review joins or leaves it.

    Reviews only join with a higher id than any before them, and leaving lowers the count, so
    (count, highest id) changes on every change of membership. One aggregate query.
    """
    summary = (
        review_list_queue(user=user)
        .order_by()
        .aggregate(count=Count("pk"), top=Max("pk"), claims=Count("claimed_by"), claimed=Max("claimed_at"))
    )
    # Claims too: a claim raises the latest claim time, a release lowers the number of claims.
    claimed = summary["claimed"].timestamp() if summary["claimed"] else 0
    return f"{summary['count']}.{summary['top'] or 0}.{summary['claims']}.{claimed}.{_minute()}"


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


def admin_recipients() -> list[str]:
    """The admins told of a review left waiting: active staff and superusers with an e-mail."""
    from django.contrib.auth import get_user_model
    from django.db.models import Q

    admins = get_user_model().objects.filter(Q(is_staff=True) | Q(is_superuser=True), is_active=True)
    return sorted(set(admins.exclude(email="").values_list("email", flat=True)))


def document_list_reminders(*, document_id: int) -> list[AuditEntry]:
    """The reminders and escalations of a document's audit trail, oldest first (the page's notes)."""
    return list(document_list_events(document_id=document_id).filter(kind__in=("reminder", "escalation")))
