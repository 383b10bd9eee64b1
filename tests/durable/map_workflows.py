"""Durable functions with map for the real-worker tests (tests/durable/test_map_workers.py).

Side effects are rows of auth's Group table, as in tests/workflows.py, so a test can count how
often each item's step really ran, across worker processes.
"""

from __future__ import annotations

import time

from durable import CompletionConfig, DurableContext, MapConfig, NestingType, StepContext, durable_execution
from tests.workflows import record


@durable_execution
def slow_items(event: dict, context: DurableContext) -> list[int]:
    """`count` items, at most `concurrency` at once, each a step that records itself and sleeps
    (`nesting`: NESTED by default, or FLAT)."""
    tag = event["tag"]

    def item(ctx: DurableContext, index: int, _: int, __: list[int]) -> int:
        def work(step: StepContext) -> int:
            record(tag, f"item{index}", step.attempt)
            time.sleep(event["sleep"])
            return index * index

        return ctx.step(work, name=f"work {index}")

    config = MapConfig(
        max_concurrency=event["concurrency"],
        completion_config=CompletionConfig.all_successful(),
        nesting_type=NestingType(event.get("nesting", "NESTED")),
    )
    return context.map(list(range(event["count"])), item, name="slow items", config=config).get_results()


@durable_execution
def approvals(event: dict, context: DurableContext) -> list[str]:
    """`count` items, each waiting for a callback of its own, then recording what it got
    (`nesting`: NESTED by default, or FLAT)."""
    tag = event["tag"]

    def item(ctx: DurableContext, index: int, _: int, __: list[int]) -> str:
        value = ctx.wait_for_callback(lambda callback_id, _: None, name=f"approval {index}")
        return ctx.step(lambda step: record(tag, f"after{index}", step.attempt) and f"{index}:{value}", name="after")

    config = MapConfig(nesting_type=NestingType(event.get("nesting", "NESTED")))
    return context.map(list(range(event["count"])), item, name="approvals", config=config).get_results()
