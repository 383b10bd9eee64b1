"""Create (or reset the password of) the demo admin that `make run` prints."""

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Create or update a staff superuser whose password comes from DEMO_ADMIN_PASSWORD."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        password = os.environ.get("DEMO_ADMIN_PASSWORD")
        if not password:
            raise CommandError("set DEMO_ADMIN_PASSWORD")
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"{'Created' if created else 'Updated'} admin user {username!r}")
