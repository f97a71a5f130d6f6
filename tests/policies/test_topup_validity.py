"""Purchased top-ups keep their value across periods for TOPUP_VALIDITY_DAYS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import time_machine

from metering.models import Balance, Channel, Grant, LedgerEntry
from metering.services.ingest import usage_record_batch
from policies.models import TopUpPack
from policies.services.close import periods_close_due
from policies.services.topups import topup_offer_accept, topup_offer_create
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule


def at(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def _buy_on_the_25th(tenant, units: int = 500):
    pack = TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=units, price=Decimal("19.90")
    )
    offer = topup_offer_create(tenant=tenant, pack=pack, now=at(2026, 11, 25, 9))
    return topup_offer_accept(tenant=tenant, public_id=offer.public_id, now=at(2026, 11, 25, 10))


def _use(tenant, event_id: str, quantity: int, when: datetime) -> None:
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event(event_id, quantity=quantity, occurred_at=when.isoformat())]},
        now=when + timedelta(minutes=1),
    )


def _balance(tenant, label: str) -> Balance:
    return Balance.objects.get(tenant=tenant, channel__code="sms", period__label=label)


def test_purchased_credits_outlive_the_period_they_were_bought_in(db, settings):
    settings.TOPUP_VALIDITY_DAYS = 365
    tenant = TenantFactory.create(slug="topup-keeps", time_zone="UTC")
    set_rule(tenant, "sms", included_units=100, now=at(2026, 11, 2))
    topup = _buy_on_the_25th(tenant)
    _use(tenant, "nov", 130, at(2026, 11, 26))  # 100 included, then 30 of the 500 bought
    assert topup.grant.expires_at == at(2026, 11, 25, 10) + timedelta(days=365)

    with time_machine.travel(at(2026, 12, 1, 2), tick=False):
        assert periods_close_due() == 1
    november, december = _balance(tenant, "2026-11"), _balance(tenant, "2026-12")
    # Nothing was lost: November keeps what it used, December holds the 470 left.
    assert (november.available, november.used, november.overage_units) == (130, 130, 0)
    assert december.available == 100 + 470
    carried = Grant.objects.get(balance=december, kind=Grant.Kind.PURCHASED)
    assert (carried.units, carried.expires_at) == (470, topup.grant.expires_at)
    # Both moves are in the ledger, each with its reason.
    assert LedgerEntry.objects.get(balance=november, grant=topup.grant, kind="expiry").reason == (
        "Purchased credits carried to 2026-12"
    )
    assert (
        LedgerEntry.objects.get(balance=december, grant=carried).reason
        == "Purchased credits carried from 2026-11"
    )

    # Included credits are still drawn first in the new period.
    _use(tenant, "dec", 150, at(2026, 12, 10))
    drawn = {g.kind: g.drawn_units for g in Grant.objects.filter(balance=december)}
    assert drawn == {"included": 100, "purchased": 50}


def test_purchased_credits_expire_after_the_validity_days(db, settings):
    settings.TOPUP_VALIDITY_DAYS = 20
    tenant = TenantFactory.create(slug="topup-ends", time_zone="UTC")
    set_rule(tenant, "sms", included_units=100, now=at(2026, 11, 2))
    _buy_on_the_25th(tenant)
    with time_machine.travel(at(2026, 12, 1, 2), tick=False):
        periods_close_due()
    assert _balance(tenant, "2026-12").available == 600
    # 20 days after 25 November: expired on 15 December, at the next use.
    _use(tenant, "late", 10, at(2026, 12, 16))
    december = _balance(tenant, "2026-12")
    assert december.available == 100
    assert december.used == 10


def test_credits_that_paid_for_earlier_overage_are_not_carried(db, settings):
    settings.TOPUP_VALIDITY_DAYS = 365
    tenant = TenantFactory.create(slug="topup-paid", time_zone="UTC")
    set_rule(tenant, "sms", included_units=100, now=at(2026, 11, 2))
    _use(tenant, "before", 400, at(2026, 11, 20))  # 300 over, before the top-up
    _buy_on_the_25th(tenant)  # 500 bought: 200 left once the 300 over are covered
    with time_machine.travel(at(2026, 12, 1, 2), tick=False):
        periods_close_due()
    november = _balance(tenant, "2026-11")
    assert (november.available - november.used, november.overage_units) == (0, 0)
    assert _balance(tenant, "2026-12").available == 100 + 200


def test_a_top_up_bought_before_a_period_closed_is_carried_only_once(db, settings):
    settings.TOPUP_VALIDITY_DAYS = 365
    tenant = TenantFactory.create(slug="topup-once", time_zone="UTC")
    set_rule(tenant, "sms", included_units=100, now=at(2026, 11, 2))
    _buy_on_the_25th(tenant)
    with time_machine.travel(at(2027, 1, 1, 2), tick=False):
        closed = [periods_close_due() for _ in range(3)]  # November, then December
    assert closed == [1, 1, 0]
    assert _balance(tenant, "2027-01").available == 100 + 500
    assert Grant.objects.filter(tenant=tenant, kind="purchased", expired_at=None).count() == 1
