"""Delete ended executions past their retention period, with their operations and history.

The workers do this about once per PURGE_INTERVAL; this command does it now, and all of it (no
PURGE_MAX_BATCHES bound), or shows what it would delete (`--dry-run`). It may run beside the
workers' purge: each batch's delete is conditional, so two purges never delete twice. What it
deleted is logged (logger `durable.retention`) as the workers' purges are.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from durable import retention
from durable.exceptions import ValidationError
from durable.management import shell

log = logging.getLogger("durable.retention")


class Command(BaseCommand):
    help = "Delete ended executions past their function's retention period (default 30 days)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Delete nothing; print what would go.")
        parser.add_argument("--function", dest="function_name", help="Only this durable function's executions.")
        parser.add_argument(
            "--batch-size", type=int, default=None, help="Executions per transaction (default PURGE_BATCH_SIZE, 200)."
        )
        parser.add_argument("--json", action="store_true", help="JSON for scripts.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] is not None and not 1 <= options["batch_size"] <= retention.MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be 1 to {retention.MAX_BATCH_SIZE}", returncode=shell.BAD_INPUT)
        try:
            report = retention.purge(
                function_name=options["function_name"], batch_size=options["batch_size"], dry_run=options["dry_run"]
            )
        except ValidationError as exc:  # a retention setting out of range
            raise CommandError(f"Nothing was deleted: {exc}", returncode=shell.BAD_INPUT) from exc
        if not options["dry_run"]:
            log.info("durable_purge run by %s: %s", shell.os_user(), report)
        if options["json"]:
            self.stdout.write(shell.dumps(report.to_dict()))
            return
        self.stdout.write(("Dry run: " if report.dry_run else "") + str(report)[:1].upper() + str(report)[1:] + ".")
        if report.functions:
            rows = [
                [name, str(f.retention_days), str(f.executions), str(f.operations), str(f.events), str(f.held)]
                for name, f in sorted(report.functions.items())
            ]
            header = ["FUNCTION", "RETENTION (DAYS)", "EXECUTIONS", "OPERATIONS", "EVENTS", "HELD"]
            self.stdout.write(shell.table(header, rows))
