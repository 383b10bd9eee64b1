"""Run the demo durable function in this process, invocation by invocation, in real time."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from durable import clock
from durable.client import get_execution, start_execution
from durable.demo import demo
from durable.models import ExecutionStatus
from durable.runtime import run_invocation


class Command(BaseCommand):
    help = "Start the demo execution and drive it to its end in-process, printing each invocation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--wait-seconds", type=int, default=2)

    def handle(self, *args: Any, wait_seconds: int, **options: Any) -> None:
        execution = start_execution(demo, {"text": "Durable execution on Django.", "wait_seconds": wait_seconds})
        self.stdout.write(f"Started demo execution {execution.pk}")
        while True:
            run_invocation(str(execution.pk))
            execution = get_execution(execution.pk)
            self.stdout.write(f"  invocation {execution.invocation_count}: execution is {execution.status}")
            if execution.status != ExecutionStatus.RUNNING:
                break
            if execution.wake_at is None:
                raise CommandError("the demo execution is waiting for a callback it never gets")
            time.sleep(max(0.0, (execution.wake_at - clock.now()).total_seconds()))
        if execution.status != ExecutionStatus.SUCCEEDED:
            raise CommandError(f"demo execution ended {execution.status}: {execution.error}")
        self.stdout.write(self.style.SUCCESS(f"Demo execution SUCCEEDED with {execution.result}"))
