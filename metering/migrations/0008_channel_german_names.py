"""Channels carry their German name and unit, for German tenants' texts; the seeded
channels get theirs (a channel staff added keeps an empty one until staff fill it in,
and texts fall back to its English name)."""

from django.db import migrations, models

GERMAN = {
    # code: (name, unit), for the channels of 0002_seed_channels
    "email": ("E-Mail", "Nachricht"),
    "sms": ("SMS", "Segment"),
    "call": ("Telefonate", "Minute"),
    "push": ("Push-Benachrichtigungen", "Nachricht"),
    "chatbot": ("Chatbot", "Konversation"),
    "video": ("Videoanrufe", "Minute"),
}


def fill(apps, schema_editor):
    Channel = apps.get_model("metering", "Channel")
    for code, (name, unit) in GERMAN.items():
        Channel.objects.filter(code=code, name_de="").update(name_de=name)
        Channel.objects.filter(code=code, unit_de="").update(unit_de=unit)


class Migration(migrations.Migration):
    dependencies = [("metering", "0007_balance_evaluation_versions")]

    operations = [
        migrations.AddField(
            model_name="channel",
            name="name_de",
            field=models.CharField(
                blank=True,
                help_text="E-Mail, Telefonate… Empty: the name.",
                max_length=100,
                verbose_name="name (German)",
            ),
        ),
        migrations.AddField(
            model_name="channel",
            name="unit_de",
            field=models.CharField(
                blank=True,
                help_text="Nachricht, Segment, Minute… Empty: the unit.",
                max_length=32,
                verbose_name="unit (German)",
            ),
        ),
        # Reversed, the fields go with their values.
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
