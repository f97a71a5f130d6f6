"""The console's "near a limit (≥ 80 %)" filter: every tenant at or past 80 % of a
channel's available credits, by the same level as the balances' status."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse

from metering.models import BillingPeriod, Channel
from metering.services.ledger import balance_lock, grant_create
from metering.services.periods import period_bounds, period_get_or_open
from policies.models import CohortDefault
from tests.conftest import NOW, Api, World, event, issue
from tests.factories import TenantFactory

pytestmark = pytest.mark.usefixtures("frozen_clock")


def near_a_limit() -> set[str]:
    user = User.objects.create_user(username="root", password="x", is_staff=True,
                                    is_superuser=True)  # fmt: skip
    client = Client()
    client.force_login(user)
    response = client.get(reverse("admin:tenants_tenant_changelist"), {"usage": "near"})
    assert response.status_code == 200
    return {tenant.name for tenant in response.context["cl"].result_list}


def test_near_a_limit_includes_tenants_past_it(world: World):
    # Of 2,000 SMS included: 105 %, exactly 80 %, just under 80 %.
    world.alice_api.ingest([event("a", channel="sms", quantity=2100)])
    world.beta_api.ingest([event("b", channel="sms", quantity=1600)])
    world.gamma_api.ingest([event("g", channel="sms", quantity=1599)])
    assert near_a_limit() == {"Alpha", "Beta"}


def test_near_a_limit_compares_percentages_not_rounded_units(world: World):
    # 2,001 available: 80 % is 1,600.8, so 1,600 used is not yet near (1,600.8 is not
    # rounded down to 1,600).
    world.alice_api.ingest([event("a", channel="sms", quantity=1600)])
    grant_create(tenant=world.alpha, channel=Channel.objects.get(code="sms"),
                 period=BillingPeriod.objects.get(tenant=world.alpha), kind="promotional",
                 units=1)  # fmt: skip
    assert near_a_limit() == set()


def test_use_of_a_channel_with_nothing_available_is_near_a_limit(db):
    # Nothing included: any use is past every threshold (usage_level is infinite), while a
    # tenant that used nothing of nothing is not near anything.
    CohortDefault.objects.create(channel=Channel.objects.get(code="sms"), included_units=0)
    sms = Channel.objects.get(code="sms")
    used = TenantFactory.create(slug="used", name="Used", time_zone="UTC")
    assert Api(issue(used).raw_key).ingest([event("e", quantity=1)]).status_code == 200
    idle = TenantFactory.create(slug="idle", name="Idle", time_zone="UTC")
    with transaction.atomic():  # its balance opened, nothing used
        period = period_get_or_open(tenant=idle, bounds=period_bounds(tenant=idle, at=NOW))
        assert balance_lock(tenant=idle, channel=sms, period=period, now=NOW).available == 0
    assert near_a_limit() == {"Used"}
