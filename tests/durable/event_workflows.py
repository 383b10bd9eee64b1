"""Durable functions for the event outbox's tests (tests/durable/test_events*.py); worker
processes import them by name."""

from __future__ import annotations

from durable import CallbackConfig, DurableContext, RetryPresets, StepConfig, durable_execution
from durable.config import Duration
from durable.exceptions import CallbackError


@durable_execution
def outcome(event: dict, context: DurableContext) -> str:
    """A step, an optional wait, then a step that fails (no retries) if asked to."""
    context.step(lambda _: 1, name="one")
    if event.get("wait"):
        context.wait(Duration(event["wait"]), name="wait")

    def maybe_fail(_: object) -> int:
        if event.get("fail"):
            raise ValueError("broken")
        return 2

    context.step(maybe_fail, name="maybe fail", config=StepConfig(retry_strategy=RetryPresets.none()))
    return "done"


@durable_execution(operation_events=True)
def with_operation_events(event: dict, context: DurableContext) -> int:
    first = context.step(lambda _: 1, name="first")
    context.wait(Duration(1), name="pause")
    return first + context.step(lambda _: 2, name="second")


@durable_execution
def invokes_outcome(event: dict, context: DurableContext) -> str:
    return context.invoke("tests.durable.event_workflows.outcome", event, name="child")


@durable_execution(operation_events=True)
def waits_for_approval(event: dict, context: DurableContext) -> str:
    callback = context.create_callback(name="approval", config=CallbackConfig(timeout=Duration(60)))
    try:
        return str(callback.result())
    except CallbackError as exc:
        return f"no answer: {exc}"


@durable_execution(operation_events=True)
def invokes_with_operation_events(event: dict, context: DurableContext) -> str:
    return context.invoke("tests.durable.event_workflows.outcome", event, name="child")
