"""Run the demo durable function and report, invocation by invocation, what really happened."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from durable import clock, conf
from durable.client import get_execution, start_execution
from durable.config import Duration
from durable.context import DurableContext
from durable.execution import durable_execution
from durable.models import Execution, ExecutionStatus
from durable.runtime import run_invocation
from durable.types import StepContext


# Registered under this module's path, so a worker finds it by importing this module: nothing
# is registered in a project that never runs the demo.
@durable_execution
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


class Command(BaseCommand):
    help = (
        "Start the demo execution and follow it to its end: on the workers if a dispatcher is "
        "configured, else in this process."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--wait-seconds", type=int, default=2)
        parser.add_argument("--timeout", type=float, default=60, help="Give up after this many seconds.")
        parser.add_argument("--in-process", action="store_true", help="Run invocations here, not on workers.")

    def handle(self, *args: Any, wait_seconds: int, timeout: float, in_process: bool, **options: Any) -> None:
        execution = start_execution(demo, {"text": "Durable execution on Django.", "wait_seconds": wait_seconds})
        on_workers = bool(conf.get("DISPATCHER")) and not in_process
        where = "on the workers" if on_workers else "in this process"
        self.stdout.write(f"Started demo execution {execution.pk} ({where})")
        deadline = time.monotonic() + timeout
        seen = 0
        while execution.status == ExecutionStatus.RUNNING:
            if time.monotonic() > deadline:
                raise CommandError(f"the demo execution is still RUNNING after {timeout:.0f}s; is a worker running?")
            if not on_workers and _due(execution):
                run_invocation(str(execution.pk))
            else:
                time.sleep(0.1)
            execution = get_execution(execution.pk)
            if execution.invocation_count != seen:
                seen = execution.invocation_count
                self.stdout.write(f"  invocation {seen}: execution is {execution.status}")
        if execution.status != ExecutionStatus.SUCCEEDED:
            raise CommandError(f"demo execution ended {execution.status}: {execution.error}")
        self.stdout.write(self.style.SUCCESS(f"Demo execution SUCCEEDED with {execution.result}"))


def _due(execution: Execution) -> bool:
    if execution.wake_at is None or execution.wake_at <= clock.now():
        return True
    time.sleep(min(0.2, (execution.wake_at - clock.now()).total_seconds()))
    return False
