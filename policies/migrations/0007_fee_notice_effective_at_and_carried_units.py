"""A fee schedule's notice records when the schedule takes effect for the tenant (notice
plus FEE_NOTICE_DAYS, fixed when notified); an overage charge records the units carried
into the next period, which it no longer charges. Notices recorded before take effect as
they did: at the later of the notice and the schedule's own start."""

from django.db import migrations, models


def effective_as_before(apps, schema_editor):
    notices = apps.get_model("policies", "FeeScheduleNotice").objects
    for notice in notices.select_related("schedule").iterator():
        notice.effective_at = max(notice.notified_at, notice.schedule.effective_from)
        notice.save(update_fields=["effective_at"])


class Migration(migrations.Migration):
    dependencies = [("policies", "0006_audit_trail_moves_to_the_kernel")]

    operations = [
        migrations.AddField(
            model_name="feeschedulenotice",
            name="effective_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(effective_as_before, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="feeschedulenotice",
            name="effective_at",
            field=models.DateTimeField(),
        ),
        migrations.AddField(
            model_name="overagecharge",
            name="carried_units",
            field=models.BigIntegerField(default=0),
        ),
    ]
