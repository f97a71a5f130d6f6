"""Fee schedules that cannot be wrong (issue 10, point 10): the console refuses tiers that
leave units unpriced, never offers the author or the creation time as inputs (the service
sets them), and deletes neither a notified schedule nor a published policy version, not
even through the bulk delete action."""

from __future__ import annotations

from django.contrib.admin import helpers
from django.urls import reverse
from django.utils import timezone

from metering.models import Channel
from policies.models import FeeSchedule, PolicyVersion
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from tests.admin.test_write_paths import billing, form_data, superuser, with_tiers
from tests.conftest import World


def sms() -> Channel:
    return Channel.objects.get(code="sms")


def test_a_schedule_whose_last_tier_ends_is_refused_in_the_console(world: World):
    _, client = billing()
    url = reverse("admin:policies_feeschedule_add")
    data = form_data(client.get(url))
    data.update(
        channel=sms().pk, name="Bounded", mode="graduated", currency="EUR",
        effective_from_0="2031-01-01", effective_from_1="00:00:00", reason="x",
    )  # fmt: skip
    response = client.post(url, with_tiers(data, [("100", "1.00")]))
    assert response.status_code == 200
    assert "Only the last tier is open-ended, and it must be." in response.content.decode()
    assert not FeeSchedule.objects.filter(name="Bounded").exists()


def test_the_console_never_offers_the_author_or_the_creation_time(world: World):
    _, client = billing()
    page = client.get(reverse("admin:policies_feeschedule_add"))
    fields = set(page.context["adminform"].form.fields)
    assert not fields & {"author", "created_at"}
    schedule = fee_schedule_create(channel=sms(), name="Draft", tiers=[(None, "0.10")])
    page = client.get(reverse("admin:policies_feeschedule_change", args=[schedule.pk]))
    assert not set(page.context["adminform"].form.fields) & {"author", "created_at"}


def test_a_posted_author_or_creation_time_is_ignored(world: World):
    user, client = billing()
    other, _ = superuser()
    url = reverse("admin:policies_feeschedule_add")
    data = form_data(client.get(url))
    data.update(
        channel=sms().pk, name="Forged", mode="graduated", currency="EUR",
        effective_from_0="2031-01-01", effective_from_1="00:00:00", reason="x",
        author=other.pk, created_at_0="2001-01-01", created_at_1="00:00:00",
    )  # fmt: skip
    assert client.post(url, with_tiers(data, [("", "0.10")])).status_code == 302
    schedule = FeeSchedule.objects.get(name="Forged")
    assert schedule.author == user
    assert schedule.created_at.year == timezone.now().year


def test_the_bulk_delete_spares_a_notified_schedule(world: World):
    _, client = superuser()
    notified = fee_schedule_create(channel=sms(), name="Told", tiers=[(None, "0.10")])
    fee_schedule_notify(schedule=notified)
    response = client.post(
        reverse("admin:policies_feeschedule_changelist"),
        {"action": "delete_selected", helpers.ACTION_CHECKBOX_NAME: [notified.pk], "post": "yes"},
    )
    assert response.status_code == 403  # refused as a whole, nothing deleted
    assert FeeSchedule.objects.filter(pk=notified.pk).exists()
    page = client.get(reverse("admin:policies_feeschedule_delete", args=[notified.pk]))
    assert page.status_code == 403


def test_a_published_policy_version_cannot_be_deleted(world: World):
    _, client = superuser()
    published = PolicyVersion.objects.exclude(published_at=None).first()
    assert published is not None
    response = client.post(
        reverse("admin:policies_policyversion_changelist"),
        {"action": "delete_selected", helpers.ACTION_CHECKBOX_NAME: [published.pk], "post": "yes"},
    )
    assert response.status_code == 403  # refused as a whole, nothing deleted
    assert PolicyVersion.objects.filter(pk=published.pk).exists()
    page = client.get(reverse("admin:policies_policyversion_delete", args=[published.pk]))
    assert page.status_code == 403
