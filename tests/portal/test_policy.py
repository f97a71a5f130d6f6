"""Policy (/policy/): the version in force in the person's language, the announced one with
its date, acknowledged by admins and owners through the API's service."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from creditguard.models import AuditEntry
from policies.models import PolicyAcknowledgement, PolicyVersion
from policies.services.policy import policy_version_publish

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


@pytest.fixture
def announced(db) -> PolicyVersion:
    version = PolicyVersion.objects.create(
        label="2.0", text_de="1. Allgemeines\nNeue Regeln.", text_en="1. General\nNew rules.",
        summary_de="Warnungen schon bei 75 %.", summary_en="Warnings from 75 % on.",
        effective_from=timezone.now() + timedelta(days=40), material=True,
    )  # fmt: skip
    policy_version_publish(version=version, actor=None)
    return version


def test_the_policy_in_force_is_shown_in_the_tenants_language(people):
    english = text(people.client(people.viewer).get("/policy/"))
    assert "Version 1.0 (in force)" in english and "Determining usage limits" in english
    people.alpha.language = "de"
    people.alpha.save()
    german = text(people.client(people.viewer).get("/policy/"))
    assert "Version 1.0 (in Kraft)" in german and "Bestimmung der Nutzungsgrenzen" in german


def test_an_announced_version_shows_its_date_and_what_kind_of_change_it_is(people, announced):
    body = text(people.client(people.viewer).get("/policy/"))
    day = announced.effective_from.day
    assert "Version 2.0 (announced)" in body and "New rules." in body
    assert f"Takes effect on {day} " in body and "This is a material change" in body
    overview = text(people.client(people.viewer).get("/dashboard/"))
    assert "Fair use policy 2.0 takes effect on" in overview


def test_an_admin_acknowledges_a_version(people, announced):
    client = people.client(people.admin)
    response = client.post("/policy/", {"version": "2.0"})
    assert response.status_code == 302
    acknowledgement = PolicyAcknowledgement.objects.get(tenant=people.alpha, version=announced)
    assert acknowledgement.acknowledged_by == "adam"
    body = text(client.get("/policy/"))
    assert "You acknowledged fair use policy 2.0." in body
    assert "Acknowledged by adam on" in body
    assert "Fair use policy 2.0 takes effect" not in text(client.get("/dashboard/"))


def test_acknowledging_in_the_portal_is_audited_in_the_persons_name(people, announced):
    client = people.client(people.admin)
    client.post("/policy/", {"version": "2.0"})
    client.post("/policy/", {"version": "2.0"})  # again: nothing new to record
    [entry] = AuditEntry.objects.filter(action="policy.acknowledge")
    assert (entry.actor, entry.actor_label, entry.tenant) == (people.admin, "adam", people.alpha)
    assert entry.after == {"version": "2.0", "acknowledged_by": "adam"}


def test_an_announced_version_shows_its_summary_in_the_persons_language(people, announced):
    body = text(people.client(people.viewer).get("/policy/"))
    assert "What changes Warnings from 75 % on." in body
    assert "Warnungen" not in body
    people.alpha.language = "de"
    people.alpha.save()
    german = text(people.client(people.viewer).get("/policy/"))
    assert "Was sich ändert Warnungen schon bei 75 %." in german


def test_the_version_in_force_shows_a_summary_only_if_it_has_one(people, announced):
    assert "What changed with this version" not in text(
        people.client(people.viewer).get("/policy/")
    )
    PolicyVersion.objects.filter(label="1.0").update(summary_en="The first version.")
    body = text(people.client(people.viewer).get("/policy/"))
    assert "What changed with this version The first version." in body


def test_a_viewer_reads_but_cannot_acknowledge(people, announced):
    client = people.client(people.viewer)
    assert "Acknowledge version 2.0" not in text(client.get("/policy/"))
    assert client.post("/policy/", {"version": "2.0"}).status_code == 403
    assert not PolicyAcknowledgement.objects.exists()


def test_an_unknown_version_is_not_found(people):
    assert people.client(people.owner).post("/policy/", {"version": "9.9"}).status_code == 404
