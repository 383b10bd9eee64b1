"""What the shell commands share: the operator's name, errors as exit codes, tables and JSON.

Exit codes, the same for every command, so a script can tell what went wrong without parsing
text: 0 done, 2 bad input (a filter, a payload that is not JSON or too large), 3 no such
execution or callback, 4 the execution or callback is not in a state the action allows (a stop
of an ended execution, a redrive of one that did not fail, a callback already completed).
"""

from __future__ import annotations

import contextlib
import getpass
import json
from argparse import ArgumentParser
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from durable.client import Execution, record_operator_action
from durable.exceptions import (
    CallbackAlreadyCompletedError,
    CallbackExpiredError,
    CallbackNotFoundError,
    DurableExecutionsError,
    ExecutionNotFoundError,
    ExecutionNotRunningError,
    ValidationError,
)

BAD_INPUT, NOT_FOUND, WRONG_STATE = 2, 3, 4

_CODES: tuple[tuple[type[Exception], int], ...] = (
    (ValidationError, BAD_INPUT),
    (ExecutionNotFoundError, NOT_FOUND),
    (CallbackNotFoundError, NOT_FOUND),
    (ExecutionNotRunningError, WRONG_STATE),
    (CallbackAlreadyCompletedError, WRONG_STATE),
    (CallbackExpiredError, WRONG_STATE),
)


def os_user() -> str:
    """Who runs the command, for the record when `--user` is not given."""
    try:
        return getpass.getuser()
    except OSError:  # no name for this uid (a container's, say)
        return "unknown"


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """The engine's refusals as CommandErrors with the exit code their kind has."""
    try:
        yield
    except DurableExecutionsError as exc:
        code = next((code for kind, code in _CODES if isinstance(exc, kind)), 1)
        raise CommandError(f"Nothing was changed: {exc}", returncode=code) from exc


def bad_input(message: str) -> CommandError:
    return CommandError(message, returncode=BAD_INPUT)


def act(execution_id: Any, *, action: str, user: str, perform: Callable[[], dict[str, Any]]) -> None:
    """Do `perform` and record it as the admin does (same action names and details), together:
    an action that is refused is not recorded, and a record that fails undoes the action."""
    with engine_errors(), transaction.atomic():
        details = perform()
        record_operator_action(execution_id, action=action, user=user, **details)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def dumps(value: Any) -> str:
    """JSON for machines: sorted keys, ISO times."""
    return json.dumps(value, indent=2, sort_keys=True, default=_default, ensure_ascii=False)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def payload(text: str | None) -> Any:
    """A stored JSON payload as a value (or as the text it is, if it is not JSON)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def execution_summary(execution: Execution, waiting: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "ExecutionId": str(execution.pk),
        "FunctionName": execution.function_name,
        "ExecutionName": execution.execution_name,
        "Status": execution.status,
        "Label": execution.label,
        "Attention": execution.attention,
        "StartTimestamp": iso(execution.created_at),
        "EndTimestamp": iso(execution.ended_at),
        "WaitingFor": list(waiting),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns as wide as their widest cell; a cell's newlines and tabs become spaces."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return " ".join(str(value).split())


def dumps_compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_default, ensure_ascii=False)


def preview(text: str | None, limit: int = 200) -> str:
    """One line of at most `limit` characters."""
    if text is None:
        return "-"
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def dash_safe(parser: CommandParser, verbs: dict[str, ArgumentParser]) -> CommandParser:
    """Let positionals and option values start with '-': a callback id is URL-safe base64 and one in 64 begins with
    a dash, which argparse would take for an unknown option. Such arguments are moved after a
    `--`, the options staying where argparse looks for them; other command lines are untouched."""
    plain_parse = parser.parse_args

    def parse_args(args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        return plain_parse(_positionals_last(list(args or []), parser, verbs), namespace)

    parser.parse_args = parse_args  # type: ignore[method-assign,assignment]
    return parser


def _positionals_last(args: list[str], parser: ArgumentParser, verbs: dict[str, ArgumentParser]) -> list[str]:
    start = next((i for i, arg in enumerate(args) if arg in verbs), None)
    if start is None or "--" in args:
        return args
    takes_value = {
        option
        for each in (parser, verbs[args[start]])
        for action in each._actions
        if action.option_strings and action.nargs != 0
        for option in action.option_strings
    }
    flags = {option for each in (parser, verbs[args[start]]) for option in each._option_string_actions}
    options: list[str] = []
    positionals: list[str] = []
    rest = iter(args[start + 1 :])
    dashed = False
    for arg in rest:
        if arg in takes_value:  # "--message -x": its value joined on, as "--message=-x"
            value = next(rest, None)
            options.append(arg if value is None else f"{arg}={value}")
            dashed = dashed or (value or "").startswith("-")
        elif arg.split("=", 1)[0] in flags:
            options.append(arg)
        else:
            positionals.append(arg)
            dashed = dashed or (arg.startswith("-") and arg != "-")
    if not dashed:
        return args
    return [*args[: start + 1], *options, *(["--", *positionals] if positionals else [])]
