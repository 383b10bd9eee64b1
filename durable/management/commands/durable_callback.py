"""Callbacks from a shell, addressed by their id alone as Lambda's
`send-durable-execution-callback-success|failure|heartbeat` address them:
`durable_callback succeed|fail|heartbeat CALLBACK_ID`.

A success's result is JSON unless `--raw` says it is text to deliver as it is (the admin's form
delivers raw text; from a shell a typo in JSON is the likelier mistake, so JSON is checked by
default). Each is recorded in the execution's history as the admin records it, with `--user`
(the OS user by default); exit codes are in durable/management/shell.py.
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from durable import operator_actions as actions
from durable.client import callback_execution_id, callback_result_limit
from durable.errors import ErrorObject
from durable.management import shell
from durable.operator_actions import OperatorAction


class Command(BaseCommand):
    help = "Complete, fail or heartbeat a durable execution's callback by its id."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        return shell.dash_safe(super().create_parser(prog_name, subcommand, **kwargs), self.verbs)

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="{succeed,fail,heartbeat}")
        succeed = verbs.add_parser("succeed", help="Complete the callback with a result.")
        succeed.add_argument("callback_id")
        succeed.add_argument("result", nargs="?", default=None, help="The result (JSON); '-' reads it from stdin.")
        succeed.add_argument("--raw", action="store_true", help="Deliver the result as text, unchecked.")
        fail = verbs.add_parser("fail", help="Fail the callback; the handler sees CallbackError.")
        fail.add_argument("callback_id")
        fail.add_argument("--error-type", default="CallbackError")
        fail.add_argument("--message", default="the callback failed")
        fail.add_argument("--data", default=None, help="The error's data (a string, as the service takes it).")
        heartbeat = verbs.add_parser("heartbeat", help="Push back the callback's heartbeat deadline.")
        heartbeat.add_argument("callback_id")
        self.verbs: dict[str, ArgumentParser] = {"succeed": succeed, "fail": fail, "heartbeat": heartbeat}
        for sub in (succeed, fail, heartbeat):
            sub.add_argument("--user", default=None, help="Recorded as who did it (the OS user by default).")
            sub.add_argument("--json", action="store_true", help="Print the outcome as JSON.")

    def handle(self, *args: Any, verb: str, callback_id: str, **options: Any) -> None:
        if verb == "succeed":
            result = _result(options["result"], raw=options["raw"])

            def perform() -> dict[str, Any]:
                return actions.complete_callback(callback_id, result)

            action = OperatorAction.COMPLETE_CALLBACK
        elif verb == "fail":
            error = ErrorObject(options["error_type"], options["message"], options["data"]).to_dict()

            def perform() -> dict[str, Any]:
                return actions.fail_callback(callback_id, error)

            action = OperatorAction.FAIL_CALLBACK
        else:

            def perform() -> dict[str, Any]:
                return actions.heartbeat_callback(callback_id)

            action = OperatorAction.HEARTBEAT_CALLBACK
        user = options["user"] or shell.os_user()
        execution_id = callback_execution_id(callback_id)
        if execution_id is None:
            with shell.engine_errors():
                perform()  # raises CallbackNotFoundError: the engine's own words and exit code
            # The callback was created between the look-up and the send: done, and recorded.
            execution_id = callback_execution_id(callback_id)
            shell.act(execution_id, action=action, user=user, perform=lambda: {"CallbackId": callback_id})
        else:
            shell.act(execution_id, action=action, user=user, perform=perform)
        outcome = {"CallbackId": callback_id, "ExecutionId": str(execution_id), "Action": str(action)}
        text = f"Done: {action} {callback_id} (execution {execution_id})."
        self.stdout.write(shell.dumps(outcome) if options["json"] else text)


def _result(text: str | None, *, raw: bool) -> str | None:
    if text == "-":
        text = sys.stdin.read()
    if text is None:
        return None
    limit = callback_result_limit()
    if len(text.encode("utf-8", errors="surrogatepass")) > limit:
        raise shell.bad_input(f"Nothing was changed: the result is larger than {limit} bytes")
    if not raw:
        try:
            json.loads(text)
        except ValueError as exc:
            raise shell.bad_input(f"Nothing was changed: the result is not JSON ({exc}); --raw sends text") from exc
    return text
