"""Durable functions the worker benchmark runs (imported by the worker processes)."""

from __future__ import annotations

import time

from durable import DurableContext, durable_execution
from durable.config import Duration


@durable_execution
def three_steps(event: dict, context: DurableContext) -> int:
    total = 0
    for i in range(3):
        total += context.step(lambda _, i=i: i, name=f"s{i}")
    return total


@durable_execution
def approval(event: dict, context: DurableContext) -> float:
    context.wait_for_callback(lambda callback_id, _: None, name="approval")
    return context.step(lambda _: time.time(), name="resumed")


@durable_execution
def timer(event: dict, context: DurableContext) -> float:
    context.step(lambda _: time.time(), name="before")
    context.wait(Duration(event["seconds"]), name="timer")
    return context.step(lambda _: time.time(), name="after")
