"""People and documents the approvals tests share."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from approvals.apps import REVIEWERS_GROUP

TEXT = (
    "The county will repave the coast road next summer. Work runs at night to keep traffic moving. "
    "Buses take a detour through the village for three weeks. Cyclists get a new lane on the hill. "
    "The county expects the work to last until September."
)


def make_people() -> dict:
    users = get_user_model().objects
    people = {
        "submitter": users.create_user("submitter"),
        "reviewer": users.create_user("reviewer"),
        "second": users.create_user("second"),
        "outsider": users.create_user("outsider"),
    }
    Group.objects.get(name=REVIEWERS_GROUP).user_set.add(people["reviewer"], people["second"])
    return people
