"""A denied authorization keeps when asking again can be allowed (``retry_at``): the next
window of the cap that refused it, or the end of the restriction that did; NULL when
waiting alone will not help. Existing rows stay NULL."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("metering", "0010_usage_rollup_quarters_by_start")]

    operations = [
        migrations.AddField(
            model_name="authorization",
            name="retry_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
