"""Executions from a shell: what the admin shows and does, as `aws lambda get-durable-execution`
and its siblings do for Lambda.

One command with a verb (`durable_executions list|show|history|stop|redrive|reenqueue`) rather
than one command per verb: an operator finds every action on executions in one `--help`, as the
admin keeps them on one page; callbacks, addressed by their id alone as the service addresses
them, have `durable_callback`. Everything goes through durable.client, the list through the
admin's own filter (durable.listing), and every action is recorded in the execution's history
as the admin records it (action name, details, and `--user`, by default the OS user). Readable
tables by default, `--json` (stable keys, ISO times) for scripts; exit codes in
durable/management/shell.py.
"""

from __future__ import annotations

from argparse import ArgumentParser
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils.dateparse import parse_date, parse_datetime

from durable import operator_actions as actions
from durable.client import (
    Execution,
    filter_executions,
    get_execution,
    get_history,
    invoked_execution_ids,
    list_operations,
    waiting_for,
)
from durable.listing import WaitKind
from durable.management import shell
from durable.operator_actions import OperatorAction

VERBS = ("list", "show", "history", "stop", "redrive", "reenqueue")


class Command(BaseCommand):
    help = "List, show, print the history of, stop, redrive or re-enqueue durable executions."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        return shell.dash_safe(super().create_parser(prog_name, subcommand, **kwargs), self.verbs)

    def add_arguments(self, parser: CommandParser) -> None:
        self.verbs: dict[str, ArgumentParser] = {}
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="{" + ",".join(VERBS) + "}")
        listing = self.verbs["list"] = verbs.add_parser(
            "list", help="Executions newest first, filtered as in the admin."
        )
        listing.add_argument("--status", help="RUNNING, SUCCEEDED, FAILED, TIMED_OUT or STOPPED.")
        listing.add_argument("--function", dest="function_name", help="The durable function's name.")
        listing.add_argument("--created-after", help="An ISO date or time (UTC unless it says).")
        listing.add_argument("--created-before", help="An ISO date or time (UTC unless it says).")
        listing.add_argument("--search", help="An execution's id, or part of its name or label.")
        listing.add_argument("--label", help="Part of the execution's label (case-insensitive).")
        kinds = ", ".join(kind for kind, _ in WaitKind.CHOICES)
        listing.add_argument("--waiting", help=f"RUNNING executions waiting for this: {kinds}.")
        listing.add_argument("--limit", type=int, default=50, help="At most this many (1 to 1000; 50).")
        listing.add_argument("--json", action="store_true", help="JSON for scripts.")
        for verb, text in (("show", "One execution and its operations."), ("history", "Its history events.")):
            sub = self.verbs[verb] = verbs.add_parser(verb, help=text)
            sub.add_argument("execution_id")
            sub.add_argument("--json", action="store_true", help="JSON for scripts.")
            if verb == "history":
                sub.add_argument("--no-data", action="store_true", help="Leave out inputs, results and errors.")
        for verb, text in (
            ("stop", "Stop a RUNNING execution."),
            ("redrive", "Resume a FAILED execution from its last completed operation."),
            ("reenqueue", "Dispatch a RUNNING execution now (a lost or stuck wake-up)."),
        ):
            sub = self.verbs[verb] = verbs.add_parser(verb, help=text)
            sub.add_argument("execution_id")
            sub.add_argument("--user", default=None, help="Recorded as who did it (the OS user by default).")
            sub.add_argument("--json", action="store_true", help="Print the execution as JSON afterwards.")
            if verb == "stop":
                sub.add_argument("--reason", default="", help="Recorded as the execution's error.")

    def handle(self, *args: Any, verb: str, **options: Any) -> None:
        getattr(self, f"_{verb}")(options)

    def _emit(self, options: dict[str, Any], value: Any, text: str) -> None:
        self.stdout.write(shell.dumps(value) if options["json"] else text)

    def _list(self, options: dict[str, Any]) -> None:
        with shell.engine_errors():
            rows = filter_executions(
                status=options["status"],
                function_name=options["function_name"],
                created_after=_moment(options["created_after"], "--created-after"),
                created_before=_moment(options["created_before"], "--created-before"),
                search=options["search"],
                label=options["label"],
                waiting=options["waiting"],
                limit=options["limit"],
            )
        waits = waiting_for(row.pk for row in rows if row.status == "RUNNING")
        summaries = [shell.execution_summary(row, waits.get(str(row.pk), ())) for row in rows]
        headers = ("ID", "FUNCTION", "NAME", "STATUS", "STARTED", "ENDED", "LABEL", "WAITING FOR")
        text = shell.table(
            headers,
            [
                (
                    row.pk,
                    row.function_name,
                    row.execution_name,
                    f"{row.status} ⚠ {row.attention}" if row.attention else row.status,
                    row.created_at,
                    row.ended_at,
                    shell.preview(row.label, 40) if row.label else None,
                    "; ".join(waits.get(str(row.pk), ())),
                )
                for row in rows
            ],
        )
        self._emit(options, {"Executions": summaries}, text if rows else "No executions match.")

    def _show(self, options: dict[str, Any]) -> None:
        with shell.engine_errors():
            execution = get_execution(options["execution_id"])
            operations = list_operations(execution.pk)
        waits = waiting_for([execution.pk]).get(str(execution.pk), []) if execution.status == "RUNNING" else []
        invoked = [str(pk) for pk in invoked_execution_ids(execution.pk)]
        value = {
            **shell.execution_summary(execution, waits),
            "InputPayload": shell.payload(execution.input),
            "Result": shell.payload(execution.result),
            "Error": execution.error,
            "InvocationCount": execution.invocation_count,
            "TimeoutTimestamp": shell.iso(execution.timeout_at),
            "ParentExecutionId": str(execution.parent_execution_id) if execution.parent_execution_id else None,
            "InvokedExecutionIds": invoked,
            "Operations": [
                {
                    "Id": op.operation_id,
                    "ParentId": op.parent_id,
                    "Depth": op.depth,
                    "Type": op.type,
                    "SubType": op.sub_type,
                    "Name": op.name,
                    "Status": op.status,
                    "Attempt": op.attempt,
                    "StartTimestamp": shell.iso(op.started_at),
                    "EndTimestamp": shell.iso(op.ended_at),
                    "CallbackId": op.callback_id,
                    "Error": op.error,
                }
                for op in operations
            ],
        }
        lines = [
            f"Execution   {execution.pk}",
            f"Function    {execution.function_name}",
            f"Name        {execution.execution_name}",
            f"Label       {execution.label or '-'}",
            f"Status      {execution.status}",
            f"Started     {shell.iso(execution.created_at)}",
            f"Ended       {shell.iso(execution.ended_at) or '-'}",
            f"Invocations {execution.invocation_count}",
            f"Input       {shell.preview(execution.input)}",
        ]
        if execution.attention:
            lines.append(f"Attention   ⚠ {execution.attention}")
        if execution.result is not None:
            lines.append(f"Result      {shell.preview(execution.result)}")
        if execution.error:
            lines.append(f"Error       {execution.error.get('ErrorType')}: {execution.error.get('ErrorMessage')}")
        lines += [f"Waiting for {wait}" for wait in waits]
        lines += [f"Invoked     {pk}" for pk in invoked]
        if operations:
            lines += ["", "Operations:"]
            rows = [
                (
                    "  " * op.depth + (op.name or "-"),
                    op.type,
                    op.status,
                    op.attempt,
                    op.started_at,
                    op.ended_at,
                    op.callback_id,
                )
                for op in operations
            ]
            lines.append(shell.table(("NAME", "TYPE", "STATUS", "ATTEMPT", "STARTED", "ENDED", "CALLBACK"), rows))
        self._emit(options, value, "\n".join(lines))

    def _history(self, options: dict[str, Any]) -> None:
        with shell.engine_errors():
            history = get_history(options["execution_id"], include_execution_data=not options["no_data"])
        rows = [
            (
                event["EventId"],
                event["EventTimestamp"],
                event["EventType"],
                None if event["EventType"].startswith("Execution") else event.get("Name") or event.get("Id"),
                shell.preview(shell.dumps_compact(event.get(f"{event['EventType']}Details") or {}), 100),
            )
            for event in history["Events"]
        ]
        self._emit(options, history, shell.table(("#", "TIME", "EVENT", "OPERATION", "DETAILS"), rows))

    def _stop(self, options: dict[str, Any]) -> None:
        self._act(
            options, OperatorAction.STOP, lambda: actions.stop(options["execution_id"], options["reason"]), "Stopped"
        )

    def _redrive(self, options: dict[str, Any]) -> None:
        self._act(options, OperatorAction.REDRIVE, lambda: actions.redrive(options["execution_id"]), "Redriven")

    def _reenqueue(self, options: dict[str, Any]) -> None:
        self._act(options, OperatorAction.REENQUEUE, lambda: actions.reenqueue(options["execution_id"]), "Re-enqueued")

    def _act(
        self, options: dict[str, Any], action: OperatorAction, perform: Callable[[], dict[str, Any]], done: str
    ) -> None:
        execution_id = options["execution_id"]
        shell.act(execution_id, action=action, user=options["user"] or shell.os_user(), perform=perform)
        execution: Execution = get_execution(execution_id)
        text = f"{done}: {execution.pk} ({execution.function_name} · {execution.execution_name}) is {execution.status}."
        self._emit(options, shell.execution_summary(execution), text)


def _moment(text: str | None, flag: str) -> datetime | None:
    """An ISO date (its midnight) or time; UTC when it names no zone."""
    if text is None:
        return None
    try:
        moment = parse_datetime(text)
        if moment is None and (day := parse_date(text)) is not None:
            moment = datetime(day.year, day.month, day.day)
    except ValueError:
        moment = None
    if moment is None:
        raise shell.bad_input(f"{flag} must be an ISO date or time (2026-12-02 or 2026-12-02T13:00Z), not {text!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
