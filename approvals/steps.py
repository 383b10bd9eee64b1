"""The steps of the approval workflows, each a `@durable_step` (the style the README teaches).

Every read and write of the product's tables that a workflow makes happens in one of these, so a
replay never touches the database for them: it returns what the step returned the first time.
A step's name in the journal is given where the workflow calls it (`name=`), and stays as it was
when executions in flight recorded it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

import llm
from approvals import selectors, services
from approvals.errors import WebhookDeliveryError
from approvals.models import DocumentStatus
from durable import StepContext, WaitForCallbackContext, clock, durable_step
from llm.errors import LLMError


@durable_step
def summarize(step: StepContext, document_id: int, round_number: int, feedback: str | None) -> dict[str, Any]:
    """The round's summary (a dict of llm.Summary); raises the provider's LLMError."""
    status = DocumentStatus.REVISING if round_number > 1 else DocumentStatus.SUMMARIZING
    services.document_set_status(document_id, status)
    text = selectors.document_get_text(document_id=document_id)
    try:
        summary = llm.summarize(text, feedback=feedback)
    except LLMError as exc:
        step.logger.warning("summarizer failed on attempt %s: %s", step.attempt, exc)
        raise
    return asdict(summary)


@durable_step
def notify_client(step: StepContext, document_id: int) -> int:
    """Post the document's outcome to its callback_url; the receiver's HTTP status."""
    try:
        return services.document_notify(document_id)
    except WebhookDeliveryError as exc:
        step.logger.warning("webhook attempt %s failed: %s", step.attempt, exc)
        raise


@durable_step
def record_decision(step: StepContext, document_id: int, round_number: int) -> dict[str, Any] | None:
    """The round's decision as a reviewer recorded it on the review; None if none did."""
    return selectors.review_get_decision(document_id=document_id, round_number=round_number)


@durable_step
def set_status(step: StepContext, document_id: int, status: str, detail: str = "") -> None:
    services.document_set_status(document_id, status, detail)


@durable_step
def publish(step: StepContext, document_id: int, review_id: int) -> int:
    """Persist the approved summary; run as a transactional step, so exactly once."""
    return services.summary_publish(document_id=document_id, review_id=review_id)


def open_review(document_id: int, round_number: int, summary: dict[str, Any], timeout: int, detail: str) -> Any:
    """The submitter of a round's wait_for_callback: opens (or refreshes) the round's review with
    the callback id a decision will complete."""

    def submit(callback_id: str, context: WaitForCallbackContext) -> None:
        services.review_open(
            document_id=document_id,
            round_number=round_number,
            summary=summary,
            callback_id=callback_id,
            expires_at=clock.now() + timedelta(seconds=timeout),
            detail=detail,
        )

    return submit
