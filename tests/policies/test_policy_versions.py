"""Policy versions: publishing with notice, notifications once, acknowledgement."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from creditguard.errors import Conflict, InvalidInput
from creditguard.models import AuditEntry
from notifications.models import Notification
from policies.models import PolicyVersion
from policies.services.policy import policy_version_publish
from tenants.models import ApiKey
from tests.conftest import World


def version(label: str, days: int, material: bool = True) -> PolicyVersion:
    return PolicyVersion.objects.create(
        label=label,
        text_de="Deutsch",
        text_en="English",
        summary_de="Kürzere Fristen.",
        summary_en="Shorter deadlines.",
        effective_from=timezone.now() + timedelta(days=days),
        material=material,
    )


def test_version_1_0_ships_in_german_and_english(world: World):
    body = world.alice_api.get("/api/v1/policy").json()
    assert body["current"]["version"] == "1.0" and body["upcoming"] is None
    world.alpha.language = "de"
    world.alpha.save()
    german = world.alice_api.get("/api/v1/policy").json()["current"]["text"]
    assert german.startswith("Fair Use Policy für Software-Credits")
    world.alpha.language = "en"
    world.alpha.save()
    assert (
        "Changes to the Fair Use Policy"
        in world.alice_api.get("/api/v1/policy").json()["current"]["text"]
    )
    assert body["support"]


def test_a_material_version_needs_its_notice_period(world: World):
    with pytest.raises(InvalidInput, match="30 days"):
        policy_version_publish(version=version("2.0", days=10), actor=None)


def test_a_version_that_takes_effect_later_needs_its_summary_in_both_languages(world: World):
    later = version("2.0", days=45)
    later.summary_de = "  "
    later.save()
    with pytest.raises(InvalidInput, match="summary"):
        policy_version_publish(version=later, actor=None)
    later.refresh_from_db()
    assert later.published_at is None
    assert not Notification.objects.exists()
    later.summary_de = "Kürzere Fristen."
    later.summary_en = ""
    later.save()
    with pytest.raises(InvalidInput, match="summary"):
        policy_version_publish(version=later, actor=None)
    # One in force at once (a correction, not material) has nothing to announce.
    now = version("1.0.1", days=-1, material=False)
    now.summary_de = now.summary_en = ""
    now.save()
    assert policy_version_publish(version=now, actor=None) == 0


def test_the_notice_carries_the_summary_in_each_language(world: World):
    policy_version_publish(version=version("2.0", days=45), actor=None)
    payloads = [n.payload for n in Notification.objects.filter(kind="policy_change")]
    assert len(payloads) == 3
    assert {p["summary"]["de"] for p in payloads} == {"Kürzere Fristen."}
    assert {p["summary"]["en"] for p in payloads} == {"Shorter deadlines."}
    [row] = world.alice_api.get("/api/v1/notifications").json()["results"]
    assert row["message"]["lines"][-1] == "What changes: Shorter deadlines."


def test_acknowledging_through_the_api_is_audited_once(world: World):
    v2 = version("2.0", days=45)
    policy_version_publish(version=v2, actor=None)
    assert world.alice_api.post("/api/v1/policy/acknowledge").status_code == 200
    assert world.bob_api.post("/api/v1/policy/acknowledge", {"version": "2.0"}).status_code == 200
    [entry] = AuditEntry.objects.filter(action="policy.acknowledge")
    alice = ApiKey.objects.get(tenant=world.alpha, name="alice")
    assert entry.tenant_id == world.alpha.pk and entry.actor_id is None
    assert entry.actor_label == f"API key {alice.prefix}"
    assert entry.after == {"version": "2.0", "acknowledged_by": entry.actor_label}
    assert entry.object_type == "policies.policyacknowledgement"


def test_publishing_notifies_every_tenant_once(world: World):
    v2 = version("2.0", days=45)
    assert policy_version_publish(version=v2, actor=None) == 3
    assert Notification.objects.filter(kind="policy_change").count() == 3
    with pytest.raises(Conflict):
        policy_version_publish(version=v2, actor=None)
    assert Notification.objects.filter(kind="policy_change").count() == 3


def test_acknowledgement_through_the_api_shows_in_the_admin(world: World):
    v2 = version("2.0", days=45)
    policy_version_publish(version=v2, actor=None)
    answer = world.alice_api.post("/api/v1/policy/acknowledge")
    assert answer.status_code == 200 and answer.json()["version"] == "2.0"
    again = world.bob_api.post("/api/v1/policy/acknowledge", {"version": "2.0"})
    assert again.json()["acknowledged_at"] == answer.json()["acknowledged_at"]
    upcoming = world.alice_api.get("/api/v1/policy").json()["upcoming"]
    assert upcoming["acknowledged"] is True
    summaries = {"de": "Kürzere Fristen.", "en": "Shorter deadlines."}
    assert upcoming["summary"] == summaries[world.alpha.language]
    assert world.gamma_api.get("/api/v1/policy").json()["upcoming"]["acknowledged"] is False
    assert world.alice_api.post("/api/v1/policy/acknowledge", {"version": "9.9"}).status_code == 404

    admin = User.objects.create_superuser("root", "r@example.com", "x")
    client = Client()
    client.force_login(admin)
    page = client.get(reverse("admin:policies_policyversion_change", args=[v2.pk])).content.decode()
    assert "Acknowledged (1):</strong> Alpha" in page
    assert "Not yet (2):</strong> Beta, Gamma" in page


def test_staff_write_the_summary_in_the_console_and_publishing_without_it_is_refused(
    world: World,
):
    admin = User.objects.create_superuser("root", "r@example.com", "x")
    client = Client()
    client.force_login(admin)
    add = reverse("admin:policies_policyversion_add")
    form = client.get(add).content.decode()
    assert 'name="summary_en"' in form and 'name="summary_de"' in form
    effective = timezone.now() + timedelta(days=45)
    fields = {
        "label": "3.0", "effective_from_0": effective.strftime("%Y-%m-%d"),
        "effective_from_1": "12:00:00", "material": "on", "text_en": "New", "text_de": "Neu",
        "summary_en": "", "summary_de": "",
    }  # fmt: skip
    assert client.post(add, fields).status_code == 302
    draft = PolicyVersion.objects.get(label="3.0")
    changelist = reverse("admin:policies_policyversion_changelist")
    publish = {"action": "publish", "index": "0", "_selected_action": [draft.pk]}
    page = client.post(changelist, publish, follow=True).content.decode()
    assert "write its summary" in page
    draft.refresh_from_db()
    assert draft.published_at is None
    change = reverse("admin:policies_policyversion_change", args=[draft.pk])
    fields.update(summary_en="Fees fall.", summary_de="Gebühren sinken.")
    assert client.post(change, fields).status_code == 302
    client.post(changelist, publish)
    draft.refresh_from_db()
    assert draft.published_at is not None and draft.summary("de") == "Gebühren sinken."
