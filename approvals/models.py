"""Documents submitted for summarizing, their review rounds, and the summaries published."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class DocumentStatus(models.TextChoices):
    SUBMITTED = "submitted"
    SUMMARIZING = "summarizing"
    AWAITING_REVIEW = "awaiting_review", "awaiting review"
    REVISING = "revising"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"
    STOPPED = "stopped"
    TIMED_OUT = "timed_out", "timed out"


# Outcomes the workflow reaches itself, and ends its execution met outside it (an operator's
# stop, the execution's timeout, a failure): every one is final.
OUTCOMES = frozenset({DocumentStatus.PUBLISHED, DocumentStatus.REJECTED, DocumentStatus.EXPIRED})
INTERRUPTIONS = frozenset({DocumentStatus.FAILED, DocumentStatus.STOPPED, DocumentStatus.TIMED_OUT})
FINAL_STATUSES = OUTCOMES | INTERRUPTIONS


class Document(models.Model):
    # The id the API shows: unguessable, unlike the primary key.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(max_length=200)
    text = models.TextField()
    submitter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="documents")
    status = models.CharField(max_length=20, choices=DocumentStatus.choices, default=DocumentStatus.SUBMITTED)
    status_detail = models.CharField(max_length=500, blank=True, default="")
    execution_id = models.UUIDField(null=True, blank=True, db_index=True)
    metadata = models.JSONField(default=dict, blank=True)
    callback_url = models.URLField(max_length=500, blank=True, default="")
    # Public id of the API token the document came in under: its webhooks are signed with that
    # token's signing secret (approvals.webhooks.signing_secret).
    webhook_key_id = models.CharField(max_length=64, blank=True, default="")
    # The last status of its execution the product has acted on, and when the engine set it:
    # news of the same or an older change is not acted on twice (approvals.services).
    execution_status = models.CharField(max_length=20, blank=True, default="")
    execution_status_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "-created_at"], name="approvals_doc_status")]
        permissions = [("purge_document", "Can delete a finished document with its reviews and summary")]

    def __str__(self) -> str:
        return self.title

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class Decision(models.TextChoices):
    APPROVED = "approved"
    REJECTED = "rejected"
    REVISE = "revise", "revision requested"


class Review(models.Model):
    """One round: a summary waiting for (or given) a reviewer's decision."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="reviews")
    round = models.PositiveIntegerField()
    summary = models.TextField()
    summary_provider = models.CharField(max_length=40, blank=True, default="")
    summary_model = models.CharField(max_length=120, blank=True, default="")
    # A long document's summary combines its parts' summaries: [{"start", "end", "text"}], the
    # character range of the source each covers and what it said; empty for one-part documents.
    parts = models.JSONField(default=list, blank=True)
    callback_id = models.CharField(max_length=64, unique=True)
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True, default="")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="reviews"
    )
    comment = models.TextField(blank=True, default="")
    # A revision request that asks the next summary to ignore the feedback of earlier rounds
    # (which it otherwise keeps honouring: approvals.workflows).
    start_over = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # A reviewer's claim ("I am on it"): others see who and since when; it lapses after
    # APPROVALS_CLAIM_HOURS without a decision (selectors.review_claim_is_live).
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="claims"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["document", "round"]
        constraints = [models.UniqueConstraint(fields=["document", "round"], name="approvals_review_round")]
        indexes = [
            models.Index(fields=["decision", "-created_at"], name="approvals_review_open"),
            # The queue sorted by deadline (soonest first).
            models.Index(fields=["decision", "expires_at"], name="approvals_review_deadline"),
        ]
        permissions = [("decide_review", "Can approve, reject or request a revision of a summary")]

    def __str__(self) -> str:
        return f"{self.document} round {self.round}"

    @property
    def is_open(self) -> bool:
        return not self.decision


class PublishedSummary(models.Model):
    document = models.OneToOneField(Document, on_delete=models.CASCADE, related_name="published")
    # Goes with its review, which goes with its document (purged together, approvals.admin).
    review = models.OneToOneField(Review, on_delete=models.CASCADE, related_name="published")
    text = models.TextField()
    # None when the approval completed the review's callback from outside (the API, the admin).
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "published summaries"

    def __str__(self) -> str:
        return f"Published summary of {self.document}"


class AuditEntry(models.Model):
    """One thing that happened to a document, who did it (None: the system) and when. Written
    only through services.document_record_event; never changed."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="audit_entries")
    kind = models.CharField(max_length=40)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    detail = models.CharField(max_length=1000, blank=True, default="")
    # When it happened, on the engine's clock (a reminder's time is its timer's, in tests too).
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["document", "created_at", "pk"]
        indexes = [models.Index(fields=["document", "created_at"], name="approvals_audit_document")]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.document}: {self.kind}"
