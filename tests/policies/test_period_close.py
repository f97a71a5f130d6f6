"""Period close at each tenant's month end plus the grace window."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from creditguard.errors import Unprocessable
from metering.models import Balance, BillingPeriod, Channel, Grant, LedgerEntry
from metering.services.ingest import usage_record_batch
from policies.models import OverageCharge
from policies.services.close import periods_close_due
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_periods_close_at_each_tenants_month_end(db):
    berlin = TenantFactory.create(slug="berlin", time_zone="Europe/Berlin")
    la = TenantFactory.create(slug="la", time_zone="America/Los_Angeles")
    for tenant in (berlin, la):
        usage_record_batch(
            tenant=tenant,
            payload={"events": [event("n", occurred_at="2026-11-20T12:00:00Z")]},
            now=at(2026, 11, 20, 13),
        )
    # Berlin's November ends 30 Nov 23:00 UTC, Los Angeles' on 1 Dec 08:00 UTC; one hour of grace.
    with time_machine.travel(at(2026, 11, 30, 23, 59), tick=False):
        assert periods_close_due() == 0
    with time_machine.travel(at(2026, 12, 1, 0, 1), tick=False):
        assert periods_close_due() == 1
        assert BillingPeriod.objects.get(tenant=berlin, label="2026-11").status == "closed"
        assert BillingPeriod.objects.get(tenant=la, label="2026-11").status == "open"
        # A late event for Los Angeles' November is still accepted; Berlin's is refused.
        late = {"events": [event("late", occurred_at="2026-11-30T22:00:00Z")]}
        assert usage_record_batch(tenant=la, payload=late).accepted == 1
        with pytest.raises(Unprocessable, match="closed"):
            usage_record_batch(tenant=berlin, payload=late)
    with time_machine.travel(at(2026, 12, 1, 9, 1), tick=False):
        assert periods_close_due() == 1
        assert BillingPeriod.objects.get(tenant=la, label="2026-11").status == "closed"


def test_closing_opens_the_next_period_with_its_grants_and_twice_changes_nothing(db):
    tenant = TenantFactory.create(slug="t", time_zone="UTC")
    set_rule(tenant, "sms", included_units=100, now=at(2026, 11, 2))
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event("a", occurred_at="2026-11-10T00:00:00Z")]},
        now=at(2026, 11, 10, 1),
    )
    with time_machine.travel(at(2026, 12, 1, 2), tick=False):
        assert periods_close_due() == 1
        december = BillingPeriod.objects.get(tenant=tenant, label="2026-12")
        balance = Balance.objects.get(tenant=tenant, channel__code="sms", period=december)
        assert balance.available == 100
        counts = (LedgerEntry.objects.count(), Grant.objects.count(), BillingPeriod.objects.count())
        assert periods_close_due() == 0
        assert (
            LedgerEntry.objects.count(),
            Grant.objects.count(),
            BillingPeriod.objects.count(),
        ) == counts


def test_close_finalises_charges_and_carries_overage_where_the_rule_says(db):
    sms = Channel.objects.get(code="sms")
    tenant = TenantFactory.create(slug="carry", time_zone="UTC")
    set_rule(
        tenant,
        "sms",
        included_units=100,
        action="charge_overage",
        carry_over="carry",
        now=at(2026, 11, 2),
    )
    fee_schedule_notify(
        schedule=fee_schedule_create(
            channel=sms, name="SMS", tiers=[(None, "1.00")], now=at(2026, 11, 1)
        ),
        now=at(2026, 11, 1),
    )
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event("a", quantity=130, occurred_at="2026-11-10T00:00:00Z")]},
        now=at(2026, 11, 10, 1),
    )
    with time_machine.travel(at(2026, 12, 1, 2), tick=False):
        periods_close_due()
    charge = OverageCharge.objects.get(tenant=tenant)
    # The 30 units are carried, so none of them is charged (tests/policies/test_carry_over.py).
    assert (charge.units, charge.carried_units, charge.amount, charge.finalized_at is not None) == (
        30,
        30,
        Decimal("0.00"),
        True,
    )
    december = Balance.objects.get(tenant=tenant, channel=sms, period__label="2026-12")
    assert december.available == 70  # 100 included less the 30 carried
    assert (
        LedgerEntry.objects.filter(balance=december, kind="reduction").get().reason
        == "Overage of 2026-11 carried over"
    )


def test_overage_is_forgiven_at_reset_by_default(db):
    tenant = TenantFactory.create(slug="forgive", time_zone="UTC")
    set_rule(tenant, "sms", included_units=100, now=at(2026, 11, 2))
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event("a", quantity=130, occurred_at="2026-11-10T00:00:00Z")]},
        now=at(2026, 11, 10, 1),
    )
    with time_machine.travel(at(2026, 12, 1, 2), tick=False):
        periods_close_due()
    assert (
        Balance.objects.get(tenant=tenant, channel__code="sms", period__label="2026-12").available
        == 100
    )
