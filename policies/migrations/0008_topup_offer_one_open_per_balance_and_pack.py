import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """An offer knows the balance it was made for, and a balance has at most one open
    offer of a pack (a partial unique index); offers made before have no balance."""

    dependencies = [
        ("metering", "0008_channel_german_names"),
        ("policies", "0007_fee_notice_effective_at_and_carried_units"),
    ]

    operations = [
        migrations.AddField(
            model_name="topupoffer",
            name="balance",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="metering.balance",
            ),
        ),
        migrations.AddConstraint(
            model_name="topupoffer",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status", "open")),
                fields=("balance", "pack"),
                name="topup_offer_one_open_per_balance_and_pack",
            ),
        ),
    ]
