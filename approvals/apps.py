from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

REVIEWERS_GROUP = "Reviewers"


def ensure_reviewers_group(using: str = "default", **kwargs: Any) -> None:
    """The reviewers' group holds approvals.decide_review; created after every migrate.

    Permissions themselves are created by a post_migrate handler of django.contrib.auth, which
    runs before this one (auth is installed before approvals).
    """
    from django.contrib.auth.models import Group, Permission

    permission = (
        Permission.objects.using(using).filter(content_type__app_label="approvals", codename="decide_review").first()
    )
    if permission is None:
        return
    group, _ = Group.objects.using(using).get_or_create(name=REVIEWERS_GROUP)
    group.permissions.add(permission)


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from approvals import conf, receivers, workflows
        from durable.signals import execution_status_changed

        conf.SETTINGS.check()
        post_migrate.connect(ensure_reviewers_group, sender=self)
        # The document workflow's executions only: no other function's status change makes an
        # event for it (durable.signals).
        execution_status_changed.connect(
            receivers.execution_status_changed,
            sender=workflows.summarize_approve_persist,
            dispatch_uid="approvals.follow_document_executions",
        )
