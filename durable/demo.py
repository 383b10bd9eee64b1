"""A small durable function that `manage.py durable_demo` runs to show the engine at work."""

from __future__ import annotations

import hashlib
from typing import Any

from durable.config import Duration
from durable.context import DurableContext
from durable.execution import durable_execution
from durable.types import StepContext


@durable_execution(name="durable.demo")
def demo(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    text = str(event.get("text", ""))

    def measure(step: StepContext) -> dict[str, int]:
        return {"characters": len(text), "words": len(text.split())}

    stats = context.step(measure, name="measure")
    context.wait(Duration.from_seconds(int(event.get("wait_seconds", 2))), name="pause")

    def fingerprint(step: StepContext) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    digest = context.step(fingerprint, name="fingerprint")
    return {**stats, "fingerprint": digest}
