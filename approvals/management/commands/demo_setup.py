"""Create the demo accounts `make run` prints, and one sample document to review."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser

from approvals.apps import REVIEWERS_GROUP
from approvals.models import Document
from approvals.services import document_submit

SAMPLE_TITLE = "Sample: moving the support desk to a four-day week"
SAMPLE_TEXT = """\
The support desk ran a twelve-week trial of a four-day working week from March to May. Each of the
nine agents worked four ten-hour days, and the desk stayed open five days a week by staggering the
day off across the team.

First-response time went from 3.1 hours to 2.7 hours on average. The share of tickets solved on the
first reply stayed flat at 61 percent. Customer satisfaction scores moved from 4.4 to 4.5 out of five,
which is inside the usual month-to-month noise.

Sick days fell by a third compared with the same weeks last year. In the closing survey, eight of the
nine agents asked to keep the schedule; one preferred five shorter days because of childcare hours.

Two problems showed up. Handovers on the staggered days lost context on long-running tickets, and the
Monday queue grew when two agents took the same day off. A shared handover note per ticket fixed the
first in week four. A rota rule that no more than two agents share a day off fixed the second.

The desk lead proposes making the schedule permanent from July, keeping the rota rule and the
handover notes, and reviewing the figures again after six months.
"""


class Command(BaseCommand):
    help = (
        "Create or update the demo admin (DEMO_ADMIN_PASSWORD) and demo reviewer (DEMO_REVIEWER_PASSWORD), "
        "and submit one sample document if there are none."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--admin", default="admin", help="The admin's username.")
        parser.add_argument("--reviewer", default="reviewer", help="The reviewer's username.")
        parser.add_argument("--no-sample", action="store_true", help="Do not submit the sample document.")

    def handle(self, *args: Any, admin: str, reviewer: str, no_sample: bool, **options: Any) -> None:
        admin_password = os.environ.get("DEMO_ADMIN_PASSWORD")
        reviewer_password = os.environ.get("DEMO_REVIEWER_PASSWORD")
        if not admin_password or not reviewer_password:
            raise CommandError("set DEMO_ADMIN_PASSWORD and DEMO_REVIEWER_PASSWORD")
        users = get_user_model().objects
        admin_user, created = users.get_or_create(username=admin)
        admin_user.is_staff = admin_user.is_superuser = True
        admin_user.set_password(admin_password)
        admin_user.save()
        self.stdout.write(f"{'Created' if created else 'Updated'} admin {admin!r}")

        reviewer_user, created = users.get_or_create(username=reviewer)
        reviewer_user.set_password(reviewer_password)
        reviewer_user.save()
        group = Group.objects.filter(name=REVIEWERS_GROUP).first()
        if group is None:
            raise CommandError(f"the {REVIEWERS_GROUP!r} group is missing: run `manage.py migrate` first")
        reviewer_user.groups.add(group)
        self.stdout.write(f"{'Created' if created else 'Updated'} reviewer {reviewer!r} (group {REVIEWERS_GROUP})")

        if not no_sample and not Document.objects.exists():
            document = document_submit(title=SAMPLE_TITLE, text=SAMPLE_TEXT, submitter=admin_user)
            self.stdout.write(f"Submitted the sample document #{document.pk}, execution {document.execution_id}")
