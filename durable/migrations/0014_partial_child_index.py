"""An operation's invoked child (issue 19): indexed only where there is one (a partial index),
so a step's row is not written into that index. The single-column index it replaces is dropped
by hand, as 0013 drops its four (Django's AlterField would rebuild the SQLite table)."""

import importlib
from typing import Any

import django.db.models.deletion
from django.db import migrations, models

_0013 = importlib.import_module("durable.migrations.0013_execution_id_order")


def drop_index(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("durable", "operation")
    column = model._meta.get_field("child_execution").column
    for name in _0013._single_column_indexes(schema_editor, model._meta.db_table, column):
        if name != "durable_op_child":
            schema_editor.execute(schema_editor._delete_index_sql(model, name))


def create_index(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("durable", "operation")
    field = model._meta.get_field("child_execution")
    schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))


class Migration(migrations.Migration):
    dependencies = [
        ("durable", "0013_execution_id_order"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_index, create_index)],
            state_operations=[
                migrations.AlterField(
                    model_name="operation",
                    name="child_execution",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="durable.execution",
                    ),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="operation",
            index=models.Index(
                condition=models.Q(("child_execution__isnull", False)),
                fields=["child_execution"],
                name="durable_op_child",
            ),
        ),
    ]
