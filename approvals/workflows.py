"""summarize_approve_persist: summarize a document, wait for a reviewer, publish exactly once.

Each round summarizes (retrying transient model errors), opens a review and waits for the
reviewer's callback. Approved: the summary is published by a transactional step. Rejected: that
is recorded. A revision request feeds the reviewer's comment into the next round, up to
MAX_ROUNDS. No decision before the review's timeout: the document expires. When the client gave a
callback_url, the outcome is then posted to it, signed, by a step that retries with backoff.

The handlers only decide; every read and write of the product's tables is a step of
approvals.steps, so replaying a handler touches nothing.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from typing import Any

from approvals import conf, steps
from approvals.errors import WebhookDeliveryError
from approvals.models import Decision, DocumentStatus
from approvals.services import DOCUMENT_WORKFLOW, WEBHOOK_WORKFLOW
from durable import (
    CallbackTimeoutError,
    ChildContextError,
    DurableContext,
    Duration,
    MapConfig,
    RetryStrategyConfig,
    StepConfig,
    StepError,
    StepSemantics,
    WaitForCallbackConfig,
    create_retry_strategy,
    durable_execution,
)
from durable.serdes import JsonSerDes, SerDesContext
from llm.errors import RetryableLLMError

# Only errors the model provider calls transient are retried; bad credentials fail at once.
SUMMARIZE_RETRIES = create_retry_strategy(
    RetryStrategyConfig(
        max_attempts=5,
        initial_delay=Duration(2),
        max_delay=Duration(60),
        retryable_error_types=[RetryableLLMError],
    )
)


def tell_client(context: DurableContext, event: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    """Post the outcome to the client's callback_url, if it gave one, retrying with backoff.

    A webhook that fails for good does not undo the outcome: the execution still succeeds, its
    result says the webhook was not delivered, and it is marked for an operator's attention.
    """
    if not event.get("notify"):
        return outcome
    retries = create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=int(conf.get("WEBHOOK_MAX_ATTEMPTS")),
            initial_delay=Duration(int(conf.get("WEBHOOK_RETRY_INITIAL_SECONDS"))),
            max_delay=Duration(int(conf.get("WEBHOOK_RETRY_MAX_SECONDS"))),
            retryable_error_types=[WebhookDeliveryError],
        )
    )
    try:
        status = context.step(
            steps.notify_client(outcome["document_id"]), name="notify client", config=StepConfig(retry_strategy=retries)
        )
    except StepError as exc:
        execution_id = context.execution_context.durable_execution_arn
        context.step(steps.flag_webhook_not_delivered(execution_id), name="flag webhook not delivered")
        return {**outcome, "webhook": {"delivered": False, "error": str(exc)[:500]}}
    return {**outcome, "webhook": {"delivered": True, "status": status}}


class DecisionSerDes(JsonSerDes):
    """JSON, but a result that is not JSON reads as a problem to report instead of an error."""

    def deserialize(self, data: str, context: SerDesContext) -> Any:
        try:
            return super().deserialize(data, context)
        except ValueError:
            return {"unreadable": data[:200]}


def read_decision(result: Any) -> tuple[dict[str, Any] | None, str]:
    """(the decision, "") when the review's callback result is one; (None, what is wrong) if not.

    The review pages and the API send {"decision", "comment", ...}; anything else reaches here
    only when someone completed the callback by hand (the admin). Pure, so replays agree.
    """
    if not isinstance(result, dict):
        return None, f"expected a JSON object, got {type(result).__name__}"
    if "unreadable" in result and len(result) == 1:
        return None, "the result was not JSON"
    decision, comment = result.get("decision"), result.get("comment", "")
    if decision not in Decision.values:
        return None, f"decision must be one of {', '.join(Decision.values)}, not {str(decision)[:40]!r}"
    if not isinstance(comment, str):
        return None, "comment must be a string"
    if decision == Decision.REVISE and not comment.strip():
        return None, "a revision request needs a comment"
    return {**result, "comment": comment.strip()}, ""


class NoDecisionInTimeError(Exception):
    """The review's deadline passed while its reminders were raced against its decision."""


# A reminder's e-mail is tried a few times; one that cannot be sent does not end the review.
REMINDER_RETRIES = create_retry_strategy(
    RetryStrategyConfig(max_attempts=3, initial_delay=Duration(30), max_delay=Duration(300))
)


def reminder_timers(timeout: int, reminders: dict[str, Any]) -> list[tuple[int, str, bool]]:
    """(seconds after the review opened, step name, to the admins?) of the reminders a review
    gets before its deadline, from the execution's input (`reminders`: the settings
    REMIND_AFTER and ESCALATE_AFTER when the document was submitted; 0: none)."""
    timers = [
        (int(reminders.get("remind_after", 0)), "remind reviewers", False),
        (int(reminders.get("escalate_after", 0)), "escalate to admins", True),
    ]
    return sorted(timer for timer in timers if 0 < timer[0] < timeout)


def wait_with_reminders(
    context: DurableContext,
    submitter: Any,
    name: str,
    config: WaitForCallbackConfig,
    document_id: int,
    round_number: int,
    timeout: int,
    reminders: dict[str, Any],
) -> Any:
    """The review's callback raced against durable timers: while no decision comes, the
    reviewers are reminded after REMIND_AFTER and the admins told after ESCALATE_AFTER, each a
    step of its own (sent once, shown in the history); nothing runs or is held in between.

    Returns the callback's result; raises NoDecisionInTimeError at the review's deadline.
    """
    timers = reminder_timers(timeout, reminders)
    if not timers:
        return context.wait_for_callback(submitter, name=name, config=config)

    def decision(branch: DurableContext) -> dict[str, Any]:
        try:
            return {"result": branch.wait_for_callback(submitter, name=name, config=config)}
        except CallbackTimeoutError:
            return {"expired": True}

    def remind(branch: DurableContext) -> dict[str, Any]:
        elapsed = 0
        for at, label, escalate in timers:
            branch.wait(Duration(at - elapsed), name=f"until {label} ({name})")
            elapsed = at
            # A reminder that failed for good is in the history; the review goes on waiting.
            with contextlib.suppress(StepError):
                branch.step(
                    steps.remind(document_id, round_number, at, escalate),
                    name=f"{label} ({name})",
                    config=StepConfig(
                        retry_strategy=REMINDER_RETRIES, step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY
                    ),
                )
        # Past the callback's own deadline, which always settles the race first.
        branch.wait(Duration(timeout - elapsed + 3600), name=f"after the deadline ({name})")
        return {"expired": True}

    won = context.race({"decision": decision, "reminders": remind}, name=name)
    if won.value.get("expired"):
        raise NoDecisionInTimeError(name)
    return won.value["result"]


def await_decision(
    context: DurableContext,
    document_id: int,
    round_number: int,
    summary: dict[str, Any],
    timeout: int,
    reminders: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Wait for the round's decision, as recorded on the round's review by whoever completed its
    callback through the review pages or the API (each checks that a reviewer decides, and not
    on their own document). The payload names no review the workflow trusts: the review is the
    round's, the one whose callback completed. A decision no reviewer recorded (a callback
    completed by hand), or one that cannot be used, re-opens the review, losing nothing.

    With `reminders` (executions started since they exist), the wait is raced against the
    reminders' timers (wait_with_reminders).

    Raises CallbackTimeoutError or NoDecisionInTimeError when no decision came in time.
    """
    problem = ""
    for attempt in itertools.count():
        name = f"review #{round_number}" + (f" (again, {attempt})" if attempt else "")
        detail = f"A decision arrived that could not be used ({problem}); waiting for a new one." if problem else ""
        submitter = steps.open_review(document_id, round_number, summary, timeout, detail[:500])
        config = WaitForCallbackConfig(timeout=Duration(timeout), serdes=DecisionSerDes())
        if reminders:
            result = wait_with_reminders(
                context, submitter, name, config, document_id, round_number, timeout, reminders
            )
        else:
            result = context.wait_for_callback(submitter, name=name, config=config)
        _, problem = read_decision(result)
        if problem:
            continue
        recorded = context.step(
            steps.record_decision(document_id, round_number),
            name=f"record decision #{round_number}" + (f" (again, {attempt})" if attempt else ""),
        )
        if recorded is not None:
            return dict(recorded)
        problem = "no reviewer made it: decisions come from the review pages or the API"
    raise AssertionError("unreachable")  # itertools.count() never ends


@durable_execution(name=WEBHOOK_WORKFLOW)
def document_webhook(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    """Tell the client how a document ended when its own workflow could not (it was stopped,
    timed out or failed): the same signed webhook, the same retries."""
    outcome = {"document_id": int(event["document_id"]), "status": str(event["status"])}
    return tell_client(context, {"notify": True}, outcome)


def summarize_parts(context: DurableContext, document_id: int) -> list[dict[str, Any]] | None:
    """A document longer than the summarizer's input budget, summarized part by part with
    context.map (at most PART_CONCURRENCY at once, each part retried on its own); None for a
    document that fits one call. Raises ChildContextError when a part fails for good, after
    marking the document failed."""
    plan = context.step(steps.plan_parts(document_id), name="split into parts")
    ranges, share = plan["ranges"], int(plan["share"])
    if len(ranges) == 1:
        return None

    def summarize_one(part_context: DurableContext, item: list[int], index: int, items: Sequence[list[int]]) -> Any:
        start, end = item
        return part_context.step(
            steps.summarize_part(document_id, start, end, share),
            name=f"summarize part {index + 1}",
            config=StepConfig(retry_strategy=SUMMARIZE_RETRIES),
        )

    batch = context.map(
        ranges,
        summarize_one,
        name="summarize parts",
        config=MapConfig(max_concurrency=int(conf.get("PART_CONCURRENCY")), item_namer=_part_name),
    )
    try:
        batch.throw_if_error()
    except ChildContextError as exc:
        why = f"summarizer: {exc}"[:500]
        context.step(steps.set_status(document_id, DocumentStatus.FAILED, why), name="summarize parts failed")
        raise
    return list(batch.get_results())


def _part_name(item: list[int], index: int) -> str:
    return f"part {index + 1}"


@durable_execution(name=DOCUMENT_WORKFLOW)
def summarize_approve_persist(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    document_id = int(event["document_id"])
    timeout = int(conf.get("REVIEW_TIMEOUT_SECONDS"))
    max_rounds = int(conf.get("MAX_ROUNDS"))
    # Every revision request still in force, oldest first: each round honours them all, unless
    # the reviewer asked to start over (executions started before this passed only the last).
    feedback: list[str] = []
    accumulate = bool(event.get("accumulate_feedback"))
    parts = summarize_parts(context, document_id) if event.get("in_parts") else None
    for round_number in range(1, max_rounds + 1):
        # A long document's parts were summarized once, above; each round combines them anew.
        asked: list[str] | str | None = (feedback or None) if accumulate else (feedback[-1] if feedback else None)
        body = (
            steps.summarize(document_id, round_number, asked)
            if parts is None
            else steps.combine(document_id, round_number, parts, asked)
        )
        try:
            summary = context.step(
                body, name=f"summarize #{round_number}", config=StepConfig(retry_strategy=SUMMARIZE_RETRIES)
            )
        except StepError as exc:
            # The execution fails right after; a redrive (after fixing the provider) summarizes
            # again from here, and this step, already done, is not run twice.
            why = f"summarizer: {exc}"[:500]
            context.step(
                steps.set_status(document_id, DocumentStatus.FAILED, why), name=f"summarize #{round_number} failed"
            )
            raise
        try:
            decision = await_decision(
                context, document_id, round_number, summary, timeout, reminders=event.get("reminders") or None
            )
        except (CallbackTimeoutError, NoDecisionInTimeError):
            context.step(steps.set_status(document_id, DocumentStatus.EXPIRED, "no decision in time"), name="expire")
            expired = {"document_id": document_id, "status": DocumentStatus.EXPIRED.value, "rounds": round_number}
            return tell_client(context, event, expired)
        if decision["decision"] == Decision.APPROVED:
            published_id = context.step(
                steps.publish(document_id, int(decision["review_id"])),
                name="publish",
                config=StepConfig(transactional=True),
            )
            published = {
                "document_id": document_id,
                "status": DocumentStatus.PUBLISHED.value,
                "rounds": round_number,
                "published_summary_id": published_id,
            }
            return tell_client(context, event, published)
        if decision["decision"] == Decision.REJECTED:
            reason = str(decision["comment"])[:500]
            context.step(steps.set_status(document_id, DocumentStatus.REJECTED, reason), name="reject")
            rejected = {"document_id": document_id, "status": DocumentStatus.REJECTED.value, "rounds": round_number}
            return tell_client(context, event, rejected)
        feedback = [*([] if decision.get("start_over") else feedback), str(decision["comment"])]
    # The last round's revision request is not lost: the review keeps it, and the outcome says it.
    last = f"; the last feedback: “{feedback[-1]}”" if feedback else ""
    context.step(
        steps.set_status(
            document_id,
            DocumentStatus.REJECTED,
            f"still not approved after {max_rounds} round{'s' if max_rounds != 1 else ''}{last}"[:500],
        ),
        name="reject after the last round",
    )
    rejected = {"document_id": document_id, "status": DocumentStatus.REJECTED.value, "rounds": max_rounds}
    return tell_client(context, event, rejected)
