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
    assert world.alice_api.get("/api/v1/policy").json()["upcoming"]["acknowledged"] is True
    assert world.gamma_api.get("/api/v1/policy").json()["upcoming"]["acknowledged"] is False
    assert world.alice_api.post("/api/v1/policy/acknowledge", {"version": "9.9"}).status_code == 404

    admin = User.objects.create_superuser("root", "r@example.com", "x")
    client = Client()
    client.force_login(admin)
    page = client.get(reverse("admin:policies_policyversion_change", args=[v2.pk])).content.decode()
    assert "Acknowledged (1):</strong> Alpha" in page
    assert "Not yet (2):</strong> Beta, Gamma" in page
