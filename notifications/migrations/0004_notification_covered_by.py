from django.db import migrations, models


class Migration(migrations.Migration):
    """A notification may be covered by another (a lower threshold by the higher warning
    sent in its place) or recorded as history: kept for its key, neither listed nor sent."""

    dependencies = [
        ("notifications", "0003_welcome_notification"),
    ]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="covered_by",
            field=models.CharField(blank=True, default="", max_length=200),
        ),
    ]
