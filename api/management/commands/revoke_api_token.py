from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.models import ApiToken
from api.services import token_revoke


class Command(BaseCommand):
    help = "Revoke an API token by its key id (the part after 'dtk_'); it stops working at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_id")

    def handle(self, *args: Any, **options: Any) -> None:
        token = ApiToken.objects.filter(key_id=options["key_id"]).first()
        if token is None:
            raise CommandError(f"no token with key id {options['key_id']!r}")
        if not token_revoke(token):
            raise CommandError(f"token {token.key_id} was already revoked")
        self.stdout.write(f"revoked {token}")
