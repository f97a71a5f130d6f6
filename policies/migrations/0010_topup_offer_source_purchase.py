# A pack bought directly by the customer is an offer of its own, made and accepted at once.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("policies", "0009_restriction_customer_reason"),
    ]

    operations = [
        migrations.AlterField(
            model_name="topupoffer",
            name="source",
            field=models.CharField(
                choices=[
                    ("staff", "Staff"),
                    ("warning", "Threshold warning"),
                    ("automatic", "Automatic top-up"),
                    ("purchase", "Bought by the customer"),
                ],
                default="staff",
                max_length=16,
            ),
        ),
    ]
