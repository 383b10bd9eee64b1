from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("durable", "0008_retention"),
    ]

    operations = [
        migrations.AddField(
            model_name="execution",
            name="label",
            field=models.CharField(
                blank=True, default="", help_text="A human label (start_execution).", max_length=200
            ),
        ),
        migrations.AddField(
            model_name="execution",
            name="attention",
            field=models.CharField(
                blank=True, default="", help_text="Why an operator should look at it; empty: no need.", max_length=200
            ),
        ),
        migrations.AddIndex(
            model_name="historyevent",
            index=models.Index(fields=["event_type", "timestamp"], name="durable_history_type_time"),
        ),
    ]
