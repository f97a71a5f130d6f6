"""Ship the current fair use policy as version 1.0 (German original, English translation)."""

from datetime import UTC, datetime
from pathlib import Path

from django.db import migrations

TEXTS = Path(__file__).resolve().parent.parent / "texts"


def create(apps, schema_editor):
    PolicyVersion = apps.get_model("policies", "PolicyVersion")
    PolicyVersion.objects.get_or_create(
        label="1.0",
        defaults={
            "text_de": (TEXTS / "fair-use-policy-1.0.de.md").read_text(encoding="utf-8"),
            "text_en": (TEXTS / "fair-use-policy-1.0.en.md").read_text(encoding="utf-8"),
            "effective_from": datetime(2026, 1, 1, tzinfo=UTC),
            "material": False,
            "published_at": datetime(2026, 1, 1, tzinfo=UTC),
        },
    )


def remove(apps, schema_editor):
    apps.get_model("policies", "PolicyVersion").objects.filter(label="1.0").delete()


class Migration(migrations.Migration):
    dependencies = [("policies", "0004_policy_versions")]

    operations = [migrations.RunPython(create, remove)]
