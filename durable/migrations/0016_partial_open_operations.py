"""The open operations' index holds only open operations (issue 19): a step that succeeds at once,
most of a journal's rows, writes no entry into it. Its queries repeat its condition word for word
(`status__literal_in`, durable.models.LiteralIn), so SQLite can use it."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('durable', '0015_cheaper_index_writes'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='operation',
            name='durable_op_open',
        ),
        migrations.AddIndex(
            model_name='operation',
            index=models.Index(condition=models.Q(('status__in', ('STARTED', 'PENDING'))), fields=['type', 'status', 'execution'], name='durable_op_open'),
        ),
    ]
