"""Start a worker that runs durable invocations, with the RQ scheduler and the engine's sweep."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from durable import conf
from durable.worker import DurableSimpleWorker, DurableWorker, queue


class Command(BaseCommand):
    help = "Run invocations from the durable queue (forking worker, RQ scheduler on, periodic sweep)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default=None, help="Worker name (default: host and pid).")
        parser.add_argument("--burst", action="store_true", help="Stop when the queue is empty.")
        parser.add_argument(
            "--simple", action="store_true", help="Run jobs in this process (SimpleWorker); for measurement."
        )
        parser.add_argument("--log-level", default="INFO")

    def handle(self, *args: Any, name: str | None, burst: bool, simple: bool, log_level: str, **options: Any) -> None:
        q = queue()
        worker_class = DurableSimpleWorker if simple else DurableWorker
        worker = worker_class([q], connection=q.connection, name=name)
        self.stdout.write(
            f"durable worker {worker.name} on queue {conf.get('QUEUE')!r} "
            f"({'in-process' if simple else 'forking'}, sweep every {conf.get('SWEEP_INTERVAL')}s)"
        )
        worker.work(burst=burst, with_scheduler=True, logging_level=log_level)
