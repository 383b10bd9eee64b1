"""Durable functions that worker processes run in the real-process tests.

Side effects are rows of auth's Group table (outside the journal), named
"<tag>:<what>:<attempt>:<random>", so a test can count how often each body really ran.
"""

from __future__ import annotations

import logging
import time
import uuid

from django.contrib.auth.models import Group

from durable import DurableContext, StepContext, durable_execution
from durable.config import Duration, StepConfig, WaitForCallbackConfig
from durable.retries import JitterStrategy, RetryStrategyConfig, create_retry_strategy


def record(tag: str, what: str, attempt: int = 0) -> int:
    Group.objects.create(name=f"{tag}:{what}:{attempt}:{uuid.uuid4().hex[:8]}"[:150])
    return Group.objects.filter(name__startswith=f"{tag}:{what}:").count()


def runs(tag: str, what: str) -> int:
    return Group.objects.filter(name__startswith=f"{tag}:{what}:").count()


@durable_execution
def timed(event: dict, context: DurableContext) -> dict:
    before = context.step(lambda _: time.time(), name="before")
    context.wait(Duration(event["seconds"]), name="timer")
    after = context.step(lambda _: time.time(), name="after")
    return {"before": before, "after": after}


@durable_execution
def approval(event: dict, context: DurableContext) -> dict:
    config = WaitForCallbackConfig(timeout=Duration(event.get("timeout", 600)))
    value = context.wait_for_callback(lambda callback_id, _: None, name="approval", config=config)
    return {"value": value, "resumed_at": context.step(lambda _: time.time(), name="resumed")}


@durable_execution
def slow_steps(event: dict, context: DurableContext) -> dict:
    tag = event["tag"]
    first = context.step(lambda step: record(tag, "first", step.attempt), name="first")

    def slow(step: StepContext) -> int:
        record(tag, "slow-start", step.attempt)
        if runs(tag, "slow-start") <= event.get("slow_runs", 1):
            time.sleep(event["sleep"])
        return record(tag, "slow-end", step.attempt)

    second = context.step(slow, name="slow")
    third = context.step(lambda step: record(tag, "third", step.attempt), name="third")
    return {"first": first, "second": second, "third": third}


@durable_execution(invocation_timeout=2)
def overruns_budget(event: dict, context: DurableContext) -> dict:
    return slow_steps.func(event, context)


@durable_execution
def three_steps(event: dict, context: DurableContext) -> int:
    total = 0
    for i in range(3):
        total += context.step(lambda _, i=i: i + event.get("n", 0), name=f"s{i}")
    return total


@durable_execution
def stops_its_worker(event: dict, context: DurableContext) -> str:
    """Asks its own worker process to stop (SIGTERM: a warm shut down) while it runs."""
    import os
    import signal

    context.step(lambda _: os.kill(os.getpid(), signal.SIGTERM), name="stop")
    return "done"


def effect(tag: str, step: str) -> None:
    """A side effect outside the journal: a row in chaos_effect (created by the chaos test)."""
    import os
    import random

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO chaos_effect (tag, step, pid, at) VALUES (%s, %s, %s, %s)",
            [tag, step, os.getpid(), time.time()],
        )
    time.sleep(random.uniform(0, 0.15))  # widen the window a kill can land in


@durable_execution
def chaos_mix(event: dict, context: DurableContext) -> dict:
    from durable import StepConfig

    tag = event["tag"]
    context.step(lambda _: effect(tag, "a"), name="a")
    context.wait(Duration(1), name="pause")
    # Transactional: its row commits with the checkpoint, so it exists exactly once.
    context.step(lambda _: effect(tag, "b"), name="b", config=StepConfig(transactional=True))
    decision = context.wait_for_callback(lambda callback_id, _: None, name="approval")
    context.step(lambda _: effect(tag, "c"), name="c")
    return {"tag": tag, "decision": decision}


@durable_execution
def invokes_timed(event: dict, context: DurableContext) -> dict:
    """A parent whose child waits on a timer (context.invoke, issue 16)."""
    child = context.invoke("tests.workflows.timed", {"seconds": event["seconds"]}, name="timed child")
    return {"child": child, "done_at": context.step(lambda _: time.time(), name="done")}


@durable_execution
def invokes_approval(event: dict, context: DurableContext) -> dict:
    """A parent whose child waits for a callback; a stopped child is an InvokeError here."""
    from durable.exceptions import InvokeError

    try:
        return {"child": context.invoke("tests.workflows.approval", {}, name="approval child")}
    except InvokeError as exc:
        return {"error_type": exc.error_type, "message": str(exc)}


@durable_execution
def approval_or_timer(event: dict, context: DurableContext) -> dict:
    """A race (issue 16): a callback or a timer, whichever comes first."""

    def timer(ctx: DurableContext) -> str:
        ctx.wait(Duration(event["seconds"]), name="timer")
        return "timer"

    def approval(ctx: DurableContext) -> str:
        return ctx.wait_for_callback(lambda callback_id, _: None, name="approval")

    won = context.race({"approval": approval, "timer": timer}, name="approval or timer")
    return {"winner": won.name, "value": won.value, "ended_at": context.step(lambda _: time.time(), name="end")}


@durable_execution
def flaky_then_waits(event: dict, context: DurableContext) -> int:
    """A step that fails its first attempt and is retried 1 s later, then a wait (the metrics tests)."""
    from durable.config import JitterStrategy, StepConfig
    from durable.retries import RetryStrategyConfig, create_retry_strategy

    def flaky(step: StepContext) -> int:
        if step.attempt < 2:
            raise RuntimeError("the first attempt fails")
        return step.attempt

    retry = create_retry_strategy(
        RetryStrategyConfig(max_attempts=3, initial_delay=Duration(1), jitter_strategy=JitterStrategy.NONE)
    )
    attempts = context.step(flaky, name="flaky", config=StepConfig(retry_strategy=retry))
    context.wait(Duration(event.get("seconds", 1)), name="pause")
    return attempts


@durable_execution
def logging_steps(event: dict, context: DurableContext) -> str:
    """Logs from the handler, a step and a library the step calls; the step's first attempt fails."""
    context.logger.info("handler starts")

    def fetch(step: StepContext) -> str:
        step.logger.info("fetching, attempt %s", step.attempt)
        logging.getLogger("tests.some_library").info("library call")
        if record(event["tag"], "fetch", step.attempt) == 1:
            raise ConnectionError("the first attempt fails")
        return "fetched"

    strategy = create_retry_strategy(
        RetryStrategyConfig(initial_delay=Duration(1), jitter_strategy=JitterStrategy.NONE)
    )
    return context.step(fetch, name="fetch", config=StepConfig(retry_strategy=strategy))


@durable_execution(invocation_timeout=1)
def overrun_once(event: dict, context: DurableContext) -> str:
    """Its first invocation overruns its 1 s budget in a step; the next one finishes."""

    def slow(step: StepContext) -> str:
        if record(event["tag"], "slow") == 1:
            time.sleep(3)
        return "done"

    return context.step(slow, name="slow")
