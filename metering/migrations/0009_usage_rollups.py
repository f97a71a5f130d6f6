"""Usage rollups: the events summed per tenant × channel × UTC quarter hour, hour and day,
which usage charts and totals read instead of scanning the events; filled here from the
events recorded so far (``usage_rollups_rebuild`` does the same later, for one tenant or
all)."""

import django.db.models.deletion
from django.db import migrations, models

SLOT_SIZES = (900, 3600, 86400)


def backfill(apps, schema_editor):
    UsageEvent = apps.get_model("metering", "UsageEvent")
    UsageRollup = apps.get_model("metering", "UsageRollup")
    if schema_editor.connection.vendor == "postgresql":
        events, rollups = UsageEvent._meta.db_table, UsageRollup._meta.db_table
        for size in SLOT_SIZES:
            schema_editor.execute(
                f"""
INSERT INTO {rollups} (tenant_id, channel_id, slot_seconds, slot_start, quantity, event_count)
SELECT tenant_id, channel_id, {size},
       date_bin('{size} seconds', occurred_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
       sum(quantity), count(*)
FROM {events}
GROUP BY 1, 2, 4
"""
            )
        return
    from datetime import UTC, datetime

    totals: dict[tuple[int, int, int, int], list[int]] = {}
    for tenant_id, channel_id, quantity, occurred_at in UsageEvent.objects.values_list(
        "tenant_id", "channel_id", "quantity", "occurred_at"
    ).iterator():
        for size in SLOT_SIZES:
            key = (tenant_id, channel_id, size, int(occurred_at.timestamp()) // size * size)
            total = totals.setdefault(key, [0, 0])
            total[0] += quantity
            total[1] += 1
    UsageRollup.objects.bulk_create(
        [
            UsageRollup(
                tenant_id=tenant_id,
                channel_id=channel_id,
                slot_seconds=size,
                slot_start=datetime.fromtimestamp(slot, UTC),
                quantity=quantity,
                event_count=count,
            )
            for (tenant_id, channel_id, size, slot), (quantity, count) in totals.items()
        ],
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("metering", "0008_channel_german_names"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageRollup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("slot_seconds", models.IntegerField(help_text="900, 3600 or 86400")),
                ("slot_start", models.DateTimeField(help_text="A whole slot in UTC")),
                ("quantity", models.BigIntegerField(default=0)),
                ("event_count", models.BigIntegerField(default=0)),
                (
                    "channel",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="metering.channel",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("tenant", "channel", "slot_seconds", "slot_start"),
                        name="usage_rollup_unique_slot",
                    )
                ],
            },
        ),
        # Reversing drops the table, so the backfill has nothing to undo.
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
