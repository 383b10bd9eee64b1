from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.models import Scope
from api.services import token_create


class Command(BaseCommand):
    help = "Create an API token; it and its webhook signing secret are printed once, never stored in clear."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="Username of the token's owner.")
        parser.add_argument("--name", required=True, help="What the token is for.")
        parser.add_argument(
            "--scope", action="append", required=True, choices=Scope.values, help="Repeat for several scopes."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user {options['user']!r}")
        issued = token_create(owner=user, name=options["name"], scopes=options["scope"])
        self.stdout.write(f"token: {issued.plaintext}")
        self.stdout.write(f"webhook signing secret: {issued.signing_secret}")
        self.stdout.write(f"key id: {issued.token.key_id} (scopes: {issued.token.scopes}); shown once.")
