"""Audit entries in words (issue 13): the action as a label, what changed as a field →
value table with the objects referred to by name on the audit list (one query per kind,
the same for few entries or many) and the tenant by name on its page (no query more)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from creditguard.audit_labels import action_label
from metering.models import Channel
from policies.models import TopUpPack
from policies.services.topups import topup_offer_create
from tests.admin.test_console import staff
from tests.conftest import World
from tests.factories import TenantFactory


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("topup_offer.create", "Top-up offer created"),
        ("overage.partly_waive", "Overage charge partly waived"),
        ("api_key.revoke", "API key revoked"),
        ("whatif.run.done", "What-if run finished"),
        ("auto_topup", "Automatic top-up"),
        ("something_new.frobnicate", "Something new frobnicate"),
    ],
)
def test_an_action_reads_as_a_label(code: str, label: str):
    assert action_label(code) == label


def _offer(tenant, pack: TopUpPack) -> None:
    topup_offer_create(tenant=tenant, pack=pack, actor=None)


def test_the_audit_list_names_what_an_entry_refers_to(world: World):
    sms = Channel.objects.get(code="sms")
    pack = TopUpPack.objects.create(channel=sms, units=500, price=Decimal("29.00"))
    _offer(world.alpha, pack)
    client = staff(superuser=True)
    url = reverse("admin:creditguard_auditentry_changelist")
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        body = text(client.get(url).content.decode())
    assert "Top-up offer created" in body and "topup_offer.create" not in body
    assert f"Tenant {world.alpha.name}" in body and f"Pack {pack}" in body
    assert '"tenant":' not in body and f"Pack #{pack.pk}" not in body
    for number in range(6):  # more entries of the same kinds, other tenants and packs
        other = TopUpPack.objects.create(channel=sms, units=600 + number, price=Decimal("30"))
        _offer(TenantFactory.create(slug=f"more-{number}", name=f"More {number}"), other)
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many) == len(few), [q["sql"][:90] for q in many]


def test_the_tenant_page_shows_its_trail_in_words(world: World):
    sms = Channel.objects.get(code="sms")
    pack = TopUpPack.objects.create(channel=sms, units=500, price=Decimal("29.00"))
    _offer(world.alpha, pack)
    client = staff(superuser=True)
    html = client.get(reverse("admin:tenants_tenant_change", args=[world.alpha.pk])).content
    trail = text(html.decode().split("Audit trail", 1)[1])
    assert "Top-up offer created" in trail and "topup_offer.create" not in trail
    assert f"Tenant {world.alpha.name}" in trail and f"Top up pack #{pack.pk}" in trail
    assert '"tenant":' not in trail and "notify_only" not in trail
    assert "Notify only (staff decide on fees)" in trail
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", trail)


def test_a_name_where_a_key_was_expected_is_shown_as_it_is(world: World):
    """A membership's entry holds its user by username: read as a name, never as an id
    (the list answered 500 on the demo's data)."""
    from creditguard.audit import audit_record
    from tenants.models import Membership

    membership = Membership.objects.filter(tenant=world.alpha).first()
    assert membership is not None
    audit_record(
        actor=None, action="membership.add", tenant=world.alpha, obj=membership,
        before=None, after={"user": "customer-admin", "role": "admin"}, reason="test",
        now=timezone.now(),
    )  # fmt: skip
    client = staff(superuser=True)
    response = client.get(reverse("admin:creditguard_auditentry_changelist"))
    assert response.status_code == 200
    assert "User customer-admin" in text(response.content.decode())
