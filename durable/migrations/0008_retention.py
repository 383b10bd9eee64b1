from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("durable", "0007_event_outbox"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(fields=["function_name", "ended_at"], name="durable_exec_ended"),
        ),
    ]
