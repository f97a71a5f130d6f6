"""Seed the channels of the fair use policy: e-mail, SMS and calls active;
push, chatbot and video present but inactive (policy § 3: future channels)."""

from django.db import migrations

CHANNELS = [
    # code, name, unit, active, capacity per day, default included units, order
    ("email", "E-mail", "message", True, 5_000_000, 10_000, 10),
    ("sms", "SMS", "segment", True, 500_000, 2_000, 20),
    ("call", "Phone calls", "minute", True, 100_000, 500, 30),
    ("push", "Push notifications", "message", False, None, 0, 40),
    ("chatbot", "Chatbot", "conversation", False, None, 0, 50),
    ("video", "Video calls", "minute", False, None, 0, 60),
]


def seed(apps, schema_editor):
    Channel = apps.get_model("metering", "Channel")
    for code, name, unit, active, capacity, included, order in CHANNELS:
        Channel.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "unit": unit,
                "active": active,
                "capacity_per_day": capacity,
                "default_included_units": included,
                "sort_order": order,
            },
        )


def unseed(apps, schema_editor):
    Channel = apps.get_model("metering", "Channel")
    Channel.objects.filter(code__in=[row[0] for row in CHANNELS]).delete()


class Migration(migrations.Migration):
    dependencies = [("metering", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
