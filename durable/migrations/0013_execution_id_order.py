"""New work beside very many waiting executions (issue 19): time-ordered execution ids, and no
index of its own for a foreign key that another index already leads with.

Both in the models' state only, the database's side done by hand: Django's AlterField of a
field's default or db_index rebuilds a SQLite table (a million history rows); this drops the
four indexes (found by their columns) and leaves every row as it is.
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models

import durable.identifier

# (model, foreign key): each one's own index, which an index or unique constraint leading with
# the same column makes redundant (lookups and the deletes' cascades use that one).
REDUNDANT = [
    ("historyevent", "execution"),  # durable_history_order (execution, id)
    ("operation", "execution"),  # durable_op_journal (execution, id), durable_operation_unique
    ("eventdelivery", "event"),  # durable_delivery_unique (event, sink)
    ("execution", "parent_execution"),  # durable_execution_invoke_unique (parent_execution, ...)
]


def _single_column_indexes(schema_editor: Any, table: str, column: str) -> list[str]:
    with schema_editor.connection.cursor() as cursor:
        constraints = schema_editor.connection.introspection.get_constraints(cursor, table)
    return [
        name
        for name, c in constraints.items()
        if c["index"] and not c["unique"] and not c["primary_key"] and c["columns"] == [column]
    ]


def drop_indexes(apps: Any, schema_editor: Any) -> None:
    for model_name, field_name in REDUNDANT:
        model = apps.get_model("durable", model_name)
        column = model._meta.get_field(field_name).column
        for name in _single_column_indexes(schema_editor, model._meta.db_table, column):
            schema_editor.execute(schema_editor._delete_index_sql(model, name))


def create_indexes(apps: Any, schema_editor: Any) -> None:
    for model_name, field_name in REDUNDANT:
        model = apps.get_model("durable", model_name)
        field = model._meta.get_field(field_name)
        if not _single_column_indexes(schema_editor, model._meta.db_table, field.column):
            schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))


class Migration(migrations.Migration):
    dependencies = [
        ("durable", "0012_admin_list_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name="eventdelivery",
                    name="event",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="durable.outboxevent",
                    ),
                ),
                migrations.AlterField(
                    model_name="execution",
                    name="id",
                    field=models.UUIDField(
                        default=durable.identifier.new_execution_id, editable=False, primary_key=True, serialize=False
                    ),
                ),
                migrations.AlterField(
                    model_name="execution",
                    name="parent_execution",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="child_executions",
                        to="durable.execution",
                    ),
                ),
                migrations.AlterField(
                    model_name="historyevent",
                    name="execution",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="history",
                        to="durable.execution",
                    ),
                ),
                migrations.AlterField(
                    model_name="operation",
                    name="execution",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="operations",
                        to="durable.execution",
                    ),
                ),
            ],
        ),
    ]
