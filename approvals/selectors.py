"""Reads of the approval product."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from approvals.models import Document, Review


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
