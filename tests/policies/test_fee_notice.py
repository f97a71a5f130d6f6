"""Fees only after notice (issue 10, point 1): a fee schedule prices only the units used
at or after the moment it took effect for the tenant, no earlier than its notice plus
``FEE_NOTICE_DAYS``; units used before are priced by the schedule then in effect, or not
at all. The amounts follow from the ledger's usage entries and their times."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from metering.models import BillingPeriod, Channel
from metering.services.ingest import usage_record_batch
from notifications.models import Notification
from policies.models import FeeScheduleNotice
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.overage import overage_charge_refresh
from tenants.models import Tenant
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


@pytest.fixture
def tenant(db) -> Tenant:
    """Charges overage past 100 included SMS; created on 1 November (UTC)."""
    with time_machine.travel(at(1, 0), tick=False):
        tenant = TenantFactory.create(slug="late-fees", time_zone="UTC")
    set_rule(tenant, "sms", included_units=100, action="charge_overage", now=at(1, 1))
    return tenant


def use(tenant: Tenant, event_id: str, quantity: int, day: int) -> None:
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event(event_id, quantity=quantity, occurred_at=at(day).isoformat())]},
        now=at(day, 13),
    )


def publish(price_tiers, day: int, mode: str = "graduated", tenant: Tenant | None = None):
    sms = Channel.objects.get(code="sms")
    schedule = fee_schedule_create(
        channel=sms, name=f"SMS {day}", tiers=price_tiers, mode=mode, tenant=tenant, now=at(day)
    )
    fee_schedule_notify(schedule=schedule, now=at(day))
    return schedule


def charge_on(tenant: Tenant, day: int):
    period = BillingPeriod.objects.get(tenant=tenant, label="2026-11")
    return overage_charge_refresh(
        tenant=tenant, channel=Channel.objects.get(code="sms"), period=period, now=at(day, 14)
    )


def test_a_schedule_prices_only_the_units_used_after_it_took_effect(settings, tenant):
    # The case: 160 used, then a 1.00 EUR/unit schedule notified, then 10 more.
    settings.FEE_NOTICE_DAYS = 0
    use(tenant, "before", 160, day=3)
    publish([(None, "1.00")], day=5)
    use(tenant, "after", 10, day=6)
    charge = charge_on(tenant, day=6)
    assert (charge.units, charge.amount) == (70, Decimal("10.00"))


def test_a_schedule_takes_effect_fee_notice_days_after_the_notice(tenant):
    # Default 14 days: notified on the 2nd, it prices units from the 16th on.
    publish([(None, "1.00")], day=2)
    notice = FeeScheduleNotice.objects.get(tenant=tenant)
    assert notice.effective_at == at(16)
    payload = Notification.objects.get(tenant=tenant, kind="fee_schedule_notice").payload
    assert payload["effective_from"] == at(16).isoformat()
    use(tenant, "within-notice", 150, day=15)
    assert charge_on(tenant, day=15).amount == Decimal("0.00")
    use(tenant, "after-notice", 7, day=16)
    charge = charge_on(tenant, day=16)
    assert (charge.units, charge.amount) == (57, Decimal("7.00"))


def test_units_before_a_new_schedule_keep_the_price_of_the_one_then_in_effect(settings, tenant):
    settings.FEE_NOTICE_DAYS = 0
    publish([(None, "0.10")], day=2)
    use(tenant, "cheap", 130, day=3)  # 30 over at 0.10
    publish([(None, "1.00")], day=5)
    use(tenant, "dear", 20, day=6)  # 20 over at 1.00
    assert charge_on(tenant, day=6).amount == Decimal("23.00")


def test_graduated_tiers_count_the_periods_overage_from_its_first_unit(settings, tenant):
    # Overage units 1–60 come before the schedule; 61–65 fall in the first tier (1.00),
    # 66–70 in the second (2.00).
    settings.FEE_NOTICE_DAYS = 0
    use(tenant, "before", 160, day=3)
    publish([(65, "1.00"), (None, "2.00")], day=5)
    use(tenant, "after", 10, day=6)
    assert charge_on(tenant, day=6).amount == Decimal("15.00")


def test_volume_tiers_price_the_units_after_the_start_at_the_tier_the_period_reached(
    settings, tenant
):
    settings.FEE_NOTICE_DAYS = 0
    use(tenant, "before", 160, day=3)
    publish([(65, "1.00"), (None, "2.00")], day=5, mode="volume")
    use(tenant, "after", 10, day=6)
    assert charge_on(tenant, day=6).amount == Decimal("20.00")


def test_a_top_up_covers_the_periods_first_units(settings, tenant):
    # The credits, as they stand, cover the first units used; the overage is the last.
    from metering.services.ledger import grant_create

    settings.FEE_NOTICE_DAYS = 0
    use(tenant, "before", 160, day=3)
    publish([(None, "1.00")], day=5)
    use(tenant, "after", 10, day=6)
    period = BillingPeriod.objects.get(tenant=tenant, label="2026-11")
    grant_create(
        tenant=tenant,
        channel=Channel.objects.get(code="sms"),
        period=period,
        kind="promotional",
        units=65,
        reason="goodwill",
        actor=None,
        now=at(7),
    )
    charge = charge_on(tenant, day=7)
    assert (charge.units, charge.amount) == (5, Decimal("5.00"))
