from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("durable", "0009_execution_label"),
    ]

    operations = [
        migrations.AddField(
            model_name="execution",
            name="trace_parent",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
    ]
