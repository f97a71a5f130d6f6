from django.db import migrations, models


class Migration(migrations.Migration):
    """A balance's one open offer of a pack, unique with the tenant the balance implies:
    the same rule, in the form Citus accepts of a table sharded by tenant_id
    (docs/SCALING.md). The table holds offers, not events: rebuilt at once."""

    dependencies = [
        ("policies", "0015_whatif_runs"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="topupoffer",
            name="topup_offer_one_open_per_balance_and_pack",
        ),
        migrations.AddConstraint(
            model_name="topupoffer",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status", "open")),
                fields=("tenant", "balance", "pack"),
                name="topup_offer_one_open_per_balance_and_pack",
            ),
        ),
    ]
