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
def summarize(
    step: StepContext, document_id: int, round_number: int, feedback: str | list[str] | None
) -> dict[str, Any]:
    """The round's summary (a dict of llm.Summary); raises the provider's LLMError. `feedback`:
    every earlier round's revision request still in force, oldest first."""
    status = DocumentStatus.REVISING if round_number > 1 else DocumentStatus.SUMMARIZING
    services.document_set_status(document_id, status)
    text = selectors.document_get_text(document_id=document_id)
    title = selectors.document_get_title(document_id=document_id)
    try:
        summary = llm.summarize(text, title=title, feedback=feedback)
    except LLMError as exc:
        step.logger.warning("summarizer failed on attempt %s: %s", step.attempt, exc)
        raise
    return asdict(summary)


@durable_step
def plan_parts(step: StepContext, document_id: int) -> dict[str, Any]:
    """How the document is summarized: {"ranges": [[start, end], ...], "share": characters each
    part's summary may take}, one range when it fits the provider's input budget. The shares add
    up to the budget, so the parts' summaries fit the one call that combines them."""
    services.document_set_status(document_id, DocumentStatus.SUMMARIZING)
    text = selectors.document_get_text(document_id=document_id)
    budget = llm.input_budget()
    ranges = llm.split_parts(text, budget)
    return {"ranges": [list(r) for r in ranges], "share": max(200, budget // len(ranges) - 2)}


@durable_step
def summarize_part(step: StepContext, document_id: int, start: int, end: int, max_chars: int) -> dict[str, Any]:
    """The summary of characters [start, end) of the document, in at most `max_chars`."""
    text = selectors.document_get_passage(document_id=document_id, start=start, end=end)
    title = selectors.document_get_title(document_id=document_id)
    try:
        summary = llm.summarize(text, title=title, max_chars=max_chars)
    except LLMError as exc:
        step.logger.warning("summarizer failed on part %s-%s, attempt %s: %s", start, end, step.attempt, exc)
        raise
    return {"start": start, "end": end, **asdict(summary)}


@durable_step
def combine(
    step: StepContext,
    document_id: int,
    round_number: int,
    parts: list[dict[str, Any]],
    feedback: str | list[str] | None,
) -> dict[str, Any]:
    """The round's summary of a long document, from its parts' summaries (a dict of llm.Summary
    with "parts": the range each covers and what it said)."""
    status = DocumentStatus.REVISING if round_number > 1 else DocumentStatus.SUMMARIZING
    services.document_set_status(document_id, status)
    title = selectors.document_get_title(document_id=document_id)
    try:
        summary = llm.combine([part["text"] for part in parts], title=title, feedback=feedback)
    except LLMError as exc:
        step.logger.warning("combining the parts failed on attempt %s: %s", step.attempt, exc)
        raise
    covered = [{"start": part["start"], "end": part["end"], "text": part["text"]} for part in parts]
    return {**asdict(summary), "parts": covered}


@durable_step
def notify_client(step: StepContext, document_id: int) -> int:
    """Post the document's outcome to its callback_url; the receiver's HTTP status."""
    try:
        return services.document_notify(document_id)
    except WebhookDeliveryError as exc:
        step.logger.warning("webhook attempt %s failed: %s", step.attempt, exc)
        raise


@durable_step
def flag_webhook_not_delivered(step: StepContext, execution_id: str) -> None:
    """Mark the execution as needing an operator's look: its outcome never reached the client.
    A step, so a replay does not do it again."""
    services.execution_flag_attention(execution_id, services.WEBHOOK_NOT_DELIVERED)


@durable_step
def record_decision(step: StepContext, document_id: int, round_number: int) -> dict[str, Any] | None:
    """The round's decision as a reviewer recorded it on the review; None if none did."""
    return selectors.review_get_decision(document_id=document_id, round_number=round_number)


@durable_step
def remind(step: StepContext, document_id: int, round_number: int, waited: int, escalate: bool) -> list[str]:
    """E-mail a reminder about the round's waiting review (to the admins with `escalate`) and
    record it; the addresses it went to (none if the review was decided meanwhile)."""
    return services.review_remind(document_id=document_id, round_number=round_number, waited=waited, escalate=escalate)


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
