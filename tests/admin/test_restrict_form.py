"""The console's restrict form asks for two reasons and says which one is sent."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from creditguard.models import AuditEntry
from notifications.models import Notification
from policies.models import Restriction
from tests.conftest import World

pytestmark = pytest.mark.usefixtures("frozen_clock")


@pytest.fixture
def client(db) -> Client:
    user = User.objects.create_user(username="root", password="x", is_staff=True,
                                    is_superuser=True)  # fmt: skip
    client = Client()
    client.force_login(user)
    return client


def test_the_form_says_which_reason_is_sent(world: World, client: Client):
    page = client.get(reverse("admin:policies_tenant_restrict", args=[world.alpha.pk]))
    html = page.content.decode()
    assert "Internal reason" in html and "never sent to the tenant" in html
    assert "Reason sent to the tenant" in html


def test_the_page_and_the_bulk_action_send_only_the_customer_reason(world: World, client: Client):
    reasons = {"reason": "Ticket 4711: SIM farm", "customer_reason": "Unusual traffic"}
    client.post(
        reverse("admin:policies_tenant_restrict", args=[world.alpha.pk]),
        {"channel": "all", "kind": "suspend", "hours": "2", "confirmed": "1", **reasons},
    )
    client.post(
        reverse("admin:tenants_tenant_changelist"),
        {"action": "restrict_bulk", "apply": "1", "_selected_action": [world.beta.pk],
         "channel": "all", "kind": "suspend", "confirmed": "1", **reasons},
    )  # fmt: skip
    for tenant in (world.alpha, world.beta):
        restriction = Restriction.objects.get(tenant=tenant)
        assert (restriction.reason, restriction.customer_reason) == (
            "Ticket 4711: SIM farm",
            "Unusual traffic",
        )
        sent = Notification.objects.get(tenant=tenant, kind="restriction_applied").payload
        assert sent["reason"] == "Unusual traffic" and "4711" not in str(sent)
        audited = AuditEntry.objects.get(tenant=tenant, action="restriction.apply")
        assert audited.reason == "Ticket 4711: SIM farm"


def test_a_restriction_without_a_reason_for_the_customer_is_refused(world: World, client: Client):
    page = client.post(
        reverse("admin:policies_tenant_restrict", args=[world.alpha.pk]),
        {"kind": "suspend", "reason": "Ticket 4711", "customer_reason": "  "},
    )
    assert page.status_code == 200
    assert "customer_reason" in page.context["form"].errors
    assert not Restriction.objects.exists()
