"""The audit trail, moved here from policies (see policies 0006): state only, on the
existing table ``policies_auditentry``."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("creditguard", "0001_worker_heartbeat"),
        ("tenants", "0001_initial"),
        ("policies", "0006_audit_trail_moves_to_the_kernel"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEntry",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("actor_label", models.CharField(help_text="username, 'system' or an API key", max_length=150)),
                        ("action", models.CharField(max_length=64)),
                        ("object_type", models.CharField(max_length=64)),
                        ("object_id", models.CharField(max_length=64)),
                        ("before", models.JSONField(blank=True, null=True)),
                        ("after", models.JSONField(blank=True, null=True)),
                        ("reason", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField()),
                        ("actor", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                        ("tenant", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="audit_entries", to="tenants.tenant")),
                    ],
                    options={
                        "verbose_name_plural": "audit entries",
                        "db_table": "policies_auditentry",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [models.Index(fields=["tenant", "created_at"], name="audit_tenant_time")],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
