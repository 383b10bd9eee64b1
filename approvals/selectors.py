"""Reads of the approval product."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from approvals.models import Document, PublishedSummary, Review


def review_queue_for(user: AbstractBaseUser) -> QuerySet[Review]:
    """Open reviews the user may decide (not on documents they submitted), newest first."""
    return (
        Review.objects.filter(decision="")
        .exclude(document__submitter=user)
        .select_related("document", "document__submitter")
        .order_by("-created_at")
    )


def document_reviews(document: Document) -> QuerySet[Review]:
    return document.reviews.select_related("reviewer").order_by("round")


def documents_of(
    user: AbstractBaseUser,
    *,
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


def document_outcome(document: Document) -> dict[str, Any]:
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
