"""Durable functions the worker benchmark runs (imported by the worker processes)."""

from __future__ import annotations

import os
import time

from durable import DurableContext, durable_execution
from durable.config import Duration
from durable.signals import execution_status_changed


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


def _heard(sender: object, **kwargs: object) -> None:
    """A receiver that does nothing: what a status change costs the engine with someone listening."""


if os.environ.get("BENCH_LISTEN"):  # bench/workers.py --listen, in its process and the workers'
    for _function in (three_steps, approval, timer):
        execution_status_changed.connect(_heard, sender=_function)
