from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("policies", "0013_anomaly_alerts")]

    operations = [
        migrations.AddField(
            model_name="policyversion",
            name="summary_de",
            field=models.TextField(
                blank=True, help_text="What changes for the customer, a few sentences, German"
            ),
        ),
        migrations.AddField(
            model_name="policyversion",
            name="summary_en",
            field=models.TextField(
                blank=True, help_text="What changes for the customer, a few sentences, English"
            ),
        ),
    ]
