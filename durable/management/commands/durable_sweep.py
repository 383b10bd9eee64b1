"""Run the engine's sweep once: re-dispatch what is due, time out what is late."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from durable.rq.jobs import queue
from durable.sweep import SweepReport, deliver_events, sweep, sweep_with_lock


class Command(BaseCommand):
    help = "Re-dispatch due executions and expired leases; time out late executions and callbacks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="Sweep even if a worker holds the sweep lock.")

    def handle(self, *args: Any, force: bool, **options: Any) -> None:
        report: SweepReport | None
        if force:
            report = sweep()
            report.events = deliver_events()
        else:
            report = sweep_with_lock(queue().connection)
        if report is None:
            self.stdout.write("Another sweep is running; nothing done (use --force to sweep anyway).")
        else:
            self.stdout.write(f"Sweep: {report}")
