"""A reminder sent by a real worker on a durable timer: between the review opening and the
reminder no worker runs anything (the execution waits in the database, the worker blocks on its
queue), and the e-mail goes out once, through Django's e-mail backend (filebased here, so this
process can read what the worker sent)."""

import email
import email.policy

import pytest

from approvals.models import AuditEntry, Review
from approvals.services import document_submit
from durable.client import get_execution
from tests.approvals.fixtures import TEXT, make_people
from tests.processes import blocked_on_the_queue, wait_until

REMINDER_KINDS = ("reminder", "escalation")  # the audit trail's entries the reminders make

pytestmark = pytest.mark.django_db(transaction=True)
REMIND_AFTER = 4


@pytest.mark.processes
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_with_a_real_worker_a_waiting_review_is_reminded_once(workers, redis_server, tmp_path, settings):
    people = make_people()
    for name in ("reviewer", "second"):
        people[name].email = f"{name}@example.org"
        people[name].save()
    mailbox = tmp_path / "mail"
    # The reminders' times go with the execution's input (fixed where the document is submitted).
    settings.APPROVALS = {**getattr(settings, "APPROVALS", {}), "REMIND_AFTER": REMIND_AFTER, "ESCALATE_AFTER": 0}
    workers(
        1,
        APPROVALS_REVIEW_TIMEOUT_SECONDS="600",
        DJANGO_EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        DJANGO_EMAIL_FILE_PATH=str(mailbox),
    )
    document = document_submit(title="Coast road", text=TEXT, submitter=people["submitter"])
    wait_until(lambda: Review.objects.filter(document=document).exists(), 60, message="the review")
    redis = redis_server.client()

    # While the review waits for its reminder, nothing holds a worker: the execution is parked
    # with a wake-up time (its durable timer) and the worker is back on its queue.
    def parked() -> bool:
        execution = get_execution(str(document.execution_id))
        return execution.wake_at is not None and blocked_on_the_queue(redis) == 1

    wait_until(parked, 30, message="the execution parked on its timer, the worker idle")
    assert not AuditEntry.objects.filter(document=document, kind__in=REMINDER_KINDS).exists()
    assert not mailbox.exists() or not list(mailbox.iterdir())

    event = wait_until(
        lambda: AuditEntry.objects.filter(document=document, kind__in=REMINDER_KINDS).first(),
        60,
        message="the reminder from the worker",
    )
    assert (event.kind, event.actor) == ("reminder", None)  # None: the system (the workflow)
    wait_until(lambda: mailbox.exists() and list(mailbox.iterdir()), 10, message="the e-mail file")
    (sent,) = [email.message_from_string(p.read_text(), policy=email.policy.default) for p in mailbox.iterdir()]
    assert sent["Subject"] == "Reminder: “Coast road” awaits your review"
    assert sent["To"] == "reviewer@example.org, second@example.org"
    assert "has waited 4 seconds" in sent.get_body().get_content()

    # Then it waits again, holding nothing, for the decision or the deadline: one reminder only.
    wait_until(parked, 30, message="parked again after the reminder")
    document.refresh_from_db()
    assert document.status == "awaiting_review"
    assert AuditEntry.objects.filter(document=document, kind__in=REMINDER_KINDS).count() == 1
    assert len(list(mailbox.iterdir())) == 1
