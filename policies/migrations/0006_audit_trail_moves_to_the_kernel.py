"""The audit trail moves down to the kernel (``creditguard.AuditEntry``), so that every app
can write it. Only Django's state changes: the table ``policies_auditentry``, its index
and its append-only trigger stay as they are. The content type moves with the model, so
the permissions on it (and the staff groups holding them) keep working."""

from django.db import migrations


def _move_content_type(apps, schema_editor, *, source, target):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if ContentType.objects.filter(app_label=target, model="auditentry").exists():
        return
    ContentType.objects.filter(app_label=source, model="auditentry").update(app_label=target)


def forwards(apps, schema_editor):
    _move_content_type(apps, schema_editor, source="policies", target="creditguard")


def backwards(apps, schema_editor):
    _move_content_type(apps, schema_editor, source="creditguard", target="policies")


class Migration(migrations.Migration):
    dependencies = [
        ("policies", "0005_fair_use_policy_1_0"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEntry")],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
