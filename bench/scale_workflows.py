"""Durable functions bench/scale.py runs (imported by the worker processes)."""

from __future__ import annotations

import time

from durable import DurableContext, durable_execution
from durable.config import Duration, WaitForCallbackConfig


@durable_execution(execution_timeout=Duration(366 * 86400))
def scale_timer(event: dict, context: DurableContext) -> float:
    """A step, then a timer of event["seconds"]: a waiting execution."""
    context.step(lambda _: time.time(), name="first")
    context.wait(Duration(event["seconds"]), name="timer")
    return context.step(lambda _: time.time(), name="after")


@durable_execution(execution_timeout=Duration(366 * 86400))
def scale_callback(event: dict, context: DurableContext) -> float:
    """A step, then a callback (with a deadline of event["timeout"] seconds if given)."""
    context.step(lambda _: time.time(), name="first")
    timeout = event.get("timeout")
    config = WaitForCallbackConfig(timeout=Duration(timeout)) if timeout else None
    context.wait_for_callback(lambda callback_id, _: None, name="approval", config=config)
    return context.step(lambda _: time.time(), name="after")


@durable_execution
def scale_new(event: dict, context: DurableContext) -> float:
    """New work: its first step's clock (start-to-first-step latency), then two more steps."""
    first = context.step(lambda _: time.time(), name="first")
    context.step(lambda _: 1, name="s1")
    context.step(lambda _: 2, name="s2")
    return first


@durable_execution
def scale_steps(event: dict, context: DurableContext) -> int:
    """event["steps"] trivial steps (bytes per journal step)."""
    for i in range(event["steps"]):
        context.step(lambda _, i=i: i, name=f"s{i}")
    return event["steps"]
