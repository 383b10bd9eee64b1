import uuid

from django.db import migrations, models


def fill_public_ids(apps, schema_editor):
    # Existing rows each need their own value before the column becomes unique.
    document = apps.get_model("approvals", "Document")
    for pk in document.objects.values_list("pk", flat=True):
        document.objects.filter(pk=pk).update(public_id=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="document",
            name="public_id",
            field=models.UUIDField(null=True, editable=False),
        ),
        migrations.RunPython(fill_public_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="document",
            name="public_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AddField(
            model_name="document",
            name="webhook_key_id",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
    ]
