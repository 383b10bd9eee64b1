"""Fewer index pages per commit (issue 19), every query the indexes served still served by one:
- partial indexes hold only the rows their queries look for: the sweep's due, lease and timeout
  indexes the running executions with a wake-up, a lease, a timeout; the purge's the ended ones;
  the open operations' the open operations; the charts' the kinds of event they draw. An
  execution's start, its end and a step that succeeds at once write fewer entries or none;
- the admin list's three indexes are ascending, read backwards for the newest first: a start's
  entries go to their right edge, where descending ones put them at the left edge, which SQLite
  rebalances three pages at a time;
- the history's chart index leads with the time, so a commit's events share one page of it
  instead of a page per kind of event;
- the journal's index by (execution, id) is gone: its load reads the unique index by (execution,
  operation id) and sorts its rows by id (0.4 ms more for a journal of 1,000 steps, whose replay
  took 6.6 to 7.1 ms against 6.3 to 6.7, bench/steps.py), and a step's commit writes a page less.
The queries whose index's condition names words (a status, a kind of event) repeat it word for
word (`__literal_in`, durable.models.LiteralIn). On SQLite, a 3-step execution's commits (its
start included) wrote 57 pages to the WAL where they wrote 86 (2 KB each; 2,000 executions
queued, then 200 started and run by one worker).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("durable", "0014_partial_child_index"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="execution",
            name="durable_exec_due",
        ),
        migrations.RemoveIndex(
            model_name="execution",
            name="durable_exec_lease",
        ),
        migrations.RemoveIndex(
            model_name="execution",
            name="durable_exec_timeout",
        ),
        migrations.RemoveIndex(
            model_name="execution",
            name="durable_exec_ended",
        ),
        migrations.RemoveIndex(
            model_name="execution",
            name="durable_exec_list",
        ),
        migrations.RemoveIndex(
            model_name="execution",
            name="durable_exec_list_status",
        ),
        migrations.RemoveIndex(
            model_name="execution",
            name="durable_exec_list_function",
        ),
        migrations.RemoveIndex(
            model_name="historyevent",
            name="durable_history_type_time",
        ),
        migrations.RemoveIndex(
            model_name="operation",
            name="durable_op_journal",
        ),
        migrations.RemoveIndex(
            model_name="operation",
            name="durable_op_open",
        ),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                condition=models.Q(("wake_at__isnull", False)), fields=["status", "wake_at"], name="durable_exec_due"
            ),
        ),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                condition=models.Q(("lease_expires_at__isnull", False)),
                fields=["status", "lease_expires_at"],
                name="durable_exec_lease",
            ),
        ),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                condition=models.Q(("status__in", ("RUNNING",))),
                fields=["status", "timeout_at"],
                name="durable_exec_timeout",
            ),
        ),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(fields=["created_at", "id"], name="durable_exec_list"),
        ),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(fields=["status", "created_at", "id"], name="durable_exec_list_status"),
        ),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(fields=["function_name", "created_at", "id"], name="durable_exec_list_function"),
        ),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                condition=models.Q(("ended_at__isnull", False)),
                fields=["function_name", "ended_at"],
                name="durable_exec_ended",
            ),
        ),
        migrations.AddIndex(
            model_name="historyevent",
            index=models.Index(
                condition=models.Q(
                    (
                        "event_type__in",
                        ("StepStarted", "StepSucceeded", "StepFailed", "ExecutionFailed", "ExecutionTimedOut"),
                    )
                ),
                fields=["timestamp", "event_type"],
                name="durable_history_time_type",
            ),
        ),
        migrations.AddIndex(
            model_name="operation",
            index=models.Index(
                condition=models.Q(("status__in", ("STARTED", "PENDING"))),
                fields=["type", "status", "execution"],
                name="durable_op_open",
            ),
        ),
    ]
