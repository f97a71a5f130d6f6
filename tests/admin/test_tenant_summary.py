"""A tenant's console page opens with its summary: this period's usage per channel with
the last twelve periods drawn from the balances, and what waits for staff, each linked
to where they act; the same number of queries for a new tenant and for years of history."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console.tenant_summary import CHART_PERIODS, tenant_summary
from metering.models import Channel
from metering.services.ingest import usage_record_batch
from metering.services.periods import period_bounds
from policies.models import TopUpPack
from policies.services.close import periods_close_due
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.limit_requests import limit_request_create
from policies.services.topups import topup_offer_create
from tenants.models import Tenant
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.django_db

SUMMARY_QUERIES = 10
PAGE_QUERIES = 26


def _history(tenant: Tenant, months: int, used: int = 50) -> list[int]:
    """``used`` + the month's index SMS units in each of the ``months`` past periods,
    oldest first, recorded as the platform would have sent them; returns what each used."""
    now = timezone.now()
    starts = [period_bounds(tenant=tenant, at=now).starts_at]
    for _ in range(months):
        starts.append(period_bounds(tenant=tenant, at=starts[-1] - timedelta(days=1)).starts_at)
    figures = []
    for index, start in enumerate(reversed(starts[1:])):
        at = start + timedelta(days=3)
        usage_record_batch(
            tenant=tenant,
            payload={"events": [event(f"h{index}", quantity=used + index,
                                      occurred_at=at.isoformat())]},
            now=at + timedelta(minutes=1),
        )  # fmt: skip
        figures.append(used + index)
    periods_close_due(now=now)
    return figures


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("sam", "sam@creditguard.example", "x"))
    return client


def test_the_summary_reads_twelve_periods_from_the_balances_in_fixed_queries(
    django_assert_num_queries,
):
    new = TenantFactory.create(slug="new", time_zone="Europe/Berlin")
    old = TenantFactory.create(slug="old", time_zone="America/New_York")
    figures = _history(old, months=20)
    set_rule(old, "sms", included_units=100)
    for tenant in (new, old):  # this period opened for both
        usage_record_batch(tenant=tenant, payload={"events": [event("now", quantity=85)]})
    for tenant in (new, old):
        with django_assert_num_queries(SUMMARY_QUERIES):
            summary = tenant_summary(tenant=tenant)
    sms = next(row for row in summary.channels if row.balance.channel.code == "sms")
    assert len(sms.history) == CHART_PERIODS
    # Eleven closed periods, oldest first, then this one.
    assert [p.used for p in sms.history] == [*figures[-11:], 85]
    # What each closed period granted, not its balance's ``available`` (its unused credits
    # expired at the close, leaving what was used).
    assert {p.available for p in sms.history[:-1]} == {2000}
    assert (sms.balance.used, sms.balance.remaining, sms.percent, sms.level) == (85, 15, 85, "near")
    assert f"{summary.period_name}: 85 used of 100 (85 %)" in str(sms.chart)
    email = next(row for row in summary.channels if row.balance.channel.code == "email")
    assert email.history[0].used is None  # no balance that long ago: an empty slot


def test_the_page_shows_usage_and_what_waits_each_linked_to_where_staff_act(staff):
    tenant = TenantFactory.create(slug="brightcart", name="BrightCart Ltd", time_zone="UTC")
    other = TenantFactory.create(slug="other", name="Other Ltd", time_zone="UTC")
    sms = Channel.objects.get(code="sms")
    pack = TopUpPack.objects.create(channel=sms, units=500, price=Decimal("29.00"))
    last_month = period_bounds(tenant=tenant, at=timezone.now()).starts_at - timedelta(days=10)
    long_ago = last_month - timedelta(days=60)
    schedule = fee_schedule_create(
        channel=sms, name="SMS overage", tiers=[(None, "0.10")], effective_from=long_ago,
        now=long_ago,
    )  # fmt: skip
    fee_schedule_notify(schedule=schedule, now=long_ago)
    for owner in (tenant, other):
        set_rule(owner, "sms", included_units=100, now=last_month - timedelta(days=30))
        usage_record_batch(
            tenant=owner,
            payload={"events": [event("past", quantity=160, occurred_at=last_month.isoformat())]},
            now=last_month + timedelta(minutes=1),
        )
        limit_request_create(
            tenant=owner, channel=sms, included_units=300, expected_volume=250,
            reason="Spring campaign", requested_by=None,
        )  # fmt: skip
        topup_offer_create(tenant=owner, pack=pack, actor=None)
        set_rule(owner, "sms", included_units=90,
                 effective_from=timezone.now() + timedelta(days=40))  # fmt: skip
    periods_close_due()
    usage_record_batch(tenant=tenant, payload={"events": [event("now", quantity=30)]})

    page = staff.get(reverse("admin:tenants_tenant_change", args=[tenant.pk])).content.decode()
    summary = page[page.index('id="tenant-summary"') : page.index('id="tenant_form"')]
    usage = re.search(r'<tr class="channel-sms">(.*?)</tr>', summary, re.S)
    assert usage is not None
    cells = re.findall(r'<td class="num">([^<]*)', usage.group(1))
    assert cells[:4] == ["30", "100", "0", "70"]  # used, included, top-ups, remaining
    assert "usage-history" in usage.group(1) and "160 used of 100" in usage.group(1)
    queue = reverse("admin:policies_overagecharge_changelist")
    assert f"{queue}?ready=yes&amp;tenant__id__exact={tenant.pk}" in summary
    assert "60 units over, €6.00" in summary and "awaiting a decision" in summary
    request = tenant.limit_requests.get()
    assert reverse("admin:policies_limitrequest_review", args=[request.pk]) in summary
    offer = tenant.topup_offers.get()
    assert reverse("admin:policies_topupoffer_change", args=[offer.pk]) in summary
    limit = reverse("admin:policies_tenant_limit", args=[tenant.pk])
    assert f"{limit}?channel={sms.pk}" in summary and "90 included" in summary
    # Nothing of the other tenant's.
    assert str(other.limit_requests.get().pk) not in re.findall(r"limitrequest/(\d+)/", summary)
    assert f"/topupoffer/{other.topup_offers.get().pk}/" not in summary


def test_the_page_takes_the_same_queries_for_a_new_tenant_and_years_of_history(
    staff, django_assert_num_queries
):
    new = TenantFactory.create(slug="new", time_zone="UTC")
    old = TenantFactory.create(slug="old", time_zone="UTC")
    _history(old, months=30)
    for tenant in (new, old):
        usage_record_batch(tenant=tenant, payload={"events": [event("now", quantity=5)]})
    staff.get(reverse("admin:tenants_tenant_change", args=[new.pk]))  # content types cached
    for tenant in (new, old):
        with django_assert_num_queries(PAGE_QUERIES):
            response = staff.get(reverse("admin:tenants_tenant_change", args=[tenant.pk]))
        assert response.status_code == 200


def test_an_unknown_tenant_is_not_a_server_error(staff):
    response = staff.get(reverse("admin:tenants_tenant_change", args=[999999]))
    assert response.status_code in (302, 404)
    assert staff.get("/admin/tenants/tenant/nope/change/").status_code in (302, 404)
