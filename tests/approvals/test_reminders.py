"""Reminders and escalation on the engine's own timers: the review's callback is raced against
durable waits, each reminder is a step of its own (sent once), and the deadline still expires
the document. Time-skipping runner over the real engine; e-mail through Django's locmem backend."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from approvals import selectors, workflows
from approvals.models import AuditEntry, Review
from approvals.services import document_submit, review_decide
from durable.models import Execution, Operation
from durable.testing import DurableTestRunner
from tests.approvals.fixtures import TEXT, make_people

REMINDER_KINDS = ("reminder", "escalation")  # the audit trail's entries the reminders make

pytestmark = pytest.mark.django_db

REMIND, ESCALATE, DEADLINE = 600, 1800, 3600


@pytest.fixture
def people():
    people = make_people()
    users = get_user_model().objects
    for name in ("submitter", "reviewer", "second"):
        people[name].email = f"{name}@example.org"
        people[name].save()
    people["admin"] = users.create_user("admin", email="admin@example.org", is_staff=True)
    people["root"] = users.create_superuser("root", email="root@example.org")
    users.create_user("quiet-admin", is_staff=True)  # no address: not told
    users.create_user("gone-admin", email="gone@example.org", is_staff=True, is_active=False)
    return people


@pytest.fixture
def short_timers(settings):
    settings.APPROVALS = {
        **getattr(settings, "APPROVALS", {}),
        "REVIEW_TIMEOUT_SECONDS": DEADLINE,
        "REMIND_AFTER": REMIND,
        "ESCALATE_AFTER": ESCALATE,
    }


@pytest.fixture
def runner():
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        yield runner


def test_a_review_left_alone_is_reminded_once_escalated_once_then_expires(people, runner, short_timers):
    document = document_submit(title="Coast road", text=TEXT, submitter=people["submitter"])
    runner.wait_for_callback(str(document.execution_id))
    review = Review.objects.get(document=document, round=1)
    opened = review.expires_at - timedelta(seconds=DEADLINE)
    assert mail.outbox == []

    result = runner.wait_for_result(str(document.execution_id))  # skips to each timer, then the deadline
    assert json.loads(result.result)["status"] == "expired"
    document.refresh_from_db()
    assert document.status == "expired"

    assert len(mail.outbox) == 2
    reminder, escalation = mail.outbox
    # The reviewers who may decide it (root is a superuser), never its submitter.
    assert sorted(reminder.to) == ["reviewer@example.org", "root@example.org", "second@example.org"]
    assert reminder.subject == "Reminder: “Coast road” awaits your review"
    assert "has waited 10 minutes" in reminder.body
    assert sorted(escalation.to) == ["admin@example.org", "root@example.org"]
    assert escalation.subject == "Escalated: “Coast road” has waited 30 minutes for a review"

    events = list(AuditEntry.objects.filter(document=document, kind__in=REMINDER_KINDS).order_by("created_at"))
    assert [(e.kind, e.actor) for e in events] == [
        ("reminder", None),
        ("escalation", None),
    ]  # None: the system (the workflow)
    assert [e.detail for e in events] == ["round 1, 3 of the reviewers e-mailed", "round 1, 2 of the admins e-mailed"]
    assert [e.created_at - opened for e in events] == [timedelta(seconds=REMIND), timedelta(seconds=ESCALATE)]

    # The history shows each reminder: its wait and its step, run once.
    ops = Operation.objects.filter(execution_id=document.execution_id)
    steps = {o.name: o for o in ops.filter(type="STEP")}
    for name in ("remind reviewers (review #1)", "escalate to admins (review #1)"):
        assert steps[name].status == "SUCCEEDED"
        assert steps[name].attempt == 1
    waits = {o.name: o.status for o in ops.filter(type="WAIT")}
    assert waits["until remind reviewers (review #1)"] == "SUCCEEDED"
    assert waits["until escalate to admins (review #1)"] == "SUCCEEDED"
    assert waits["after the deadline (review #1)"] == "CANCELLED"  # the deadline settled the race

    # The page shows them to the reviewer.
    client = Client()
    client.force_login(people["reviewer"])
    body = client.get(reverse("approvals:document", args=[document.pk])).content.decode()
    assert "Reminder sent" in body
    assert "Escalated to admins" in body


def test_a_review_decided_before_the_reminder_sends_nothing(people, runner, short_timers):
    document = document_submit(title="Coast road", text=TEXT, submitter=people["submitter"])
    runner.wait_for_callback(str(document.execution_id))
    review_decide(Review.objects.get(document=document), reviewer=people["reviewer"], decision="approved")
    result = runner.wait_for_result(str(document.execution_id))
    assert json.loads(result.result)["status"] == "published"
    assert mail.outbox == []
    assert not AuditEntry.objects.filter(kind__in=REMINDER_KINDS).exists()
    waits = dict(
        Operation.objects.filter(execution_id=document.execution_id, type="WAIT").values_list("name", "status")
    )
    assert waits == {"until remind reviewers (review #1)": "CANCELLED"}


def test_a_revision_gets_its_own_reminders_and_a_decision_after_the_reminder_ends_them(people, runner, short_timers):
    document = document_submit(title="Coast road", text=TEXT, submitter=people["submitter"])
    runner.wait_for_callback(str(document.execution_id))
    first = Review.objects.get(document=document, round=1)
    # Skip to the first reminder only.
    runner.clock.advance_to(first.expires_at - timedelta(seconds=DEADLINE - REMIND))
    runner.step_once(str(document.execution_id))
    assert [m.subject for m in mail.outbox] == ["Reminder: “Coast road” awaits your review"]
    review_decide(first, reviewer=people["reviewer"], decision="revise", comment="Shorter.")
    runner.wait_for_callback(str(document.execution_id))
    second = Review.objects.get(document=document, round=2)
    review_decide(second, reviewer=people["second"], decision="approved")
    result = runner.wait_for_result(str(document.execution_id))
    assert json.loads(result.result)["status"] == "published"
    assert len(mail.outbox) == 1  # no escalation for round 1, nothing for round 2
    assert list(AuditEntry.objects.filter(kind__in=REMINDER_KINDS).values_list("kind", flat=True)) == ["reminder"]


def test_reminders_are_off_at_zero_or_past_the_deadline():
    assert workflows.reminder_timers(3600, {"remind_after": 0, "escalate_after": 7200}) == []
    assert workflows.reminder_timers(3600, {"remind_after": 120, "escalate_after": 60}) == [
        (60, "escalate to admins", True),
        (120, "remind reviewers", False),
    ]


def test_the_reminders_times_are_fixed_at_submission(people, short_timers, settings):
    document = document_submit(title="Coast road", text=TEXT, submitter=people["submitter"])
    settings.APPROVALS = {**settings.APPROVALS, "REMIND_AFTER": 1, "ESCALATE_AFTER": 0}  # changed later
    execution = Execution.objects.get(pk=document.execution_id)
    assert json.loads(execution.input)["reminders"] == {"remind_after": REMIND, "escalate_after": ESCALATE}


def test_recipients_are_the_reviewers_with_an_address_but_not_the_submitter(people):
    document = document_submit(title="Coast road", text=TEXT, submitter=people["reviewer"])
    review = Review(document=document, round=1)
    assert selectors.review_remind_recipients(review) == ["root@example.org", "second@example.org"]
    assert selectors.admin_recipients() == ["admin@example.org", "root@example.org"]
