"""Submit a text file for summarizing and review from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from approvals.errors import InvalidValueError
from approvals.services import document_submit

MAX_BYTES = 1_000_000


class Command(BaseCommand):
    help = "Submit FILE (UTF-8 text or Markdown) as a document; prints its id and execution id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--title", default=None, help="Default: the file name.")
        parser.add_argument("--user", default="admin", help="Submitter's username.")

    def handle(self, *args: Any, file: str, title: str | None, user: str, **options: Any) -> None:
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"no such file: {file}")
        if path.stat().st_size > MAX_BYTES:
            raise CommandError(f"{file} is larger than {MAX_BYTES} bytes")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise CommandError(f"{file} is not UTF-8 text") from exc
        if not text.strip():
            raise CommandError(f"{file} is empty")
        try:
            submitter = get_user_model().objects.get(username=user)
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"no user named {user!r}") from exc
        try:
            document = document_submit(title=title or path.stem, text=text, submitter=submitter)
        except InvalidValueError as exc:
            raise CommandError(f"{file}: {exc}") from exc
        self.stdout.write(f"Submitted document {document.pk} (execution {document.execution_id})")
