"""GET /api/v1/balances says what the tenant owes for the period so far, with its
currency: each channel's overage charge (priced by the fee schedules in effect for the
tenant, per the notice rules) and the top-ups bought, totalled per currency and never
across currencies. The figures are recomputed here from the tiers and the units."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from metering.models import BillingPeriod, Channel
from policies.models import OverageCharge, TopUpPack
from policies.selectors import period_owed
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.overage import (
    overage_charge_finalize,
    overage_charge_refresh,
    overage_decide,
)
from policies.services.topups import topup_offer_accept, topup_offer_create
from tests.conftest import NOW, World, event
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock")

TIERS = [(50, "0.10"), (None, "0.05")]  # graduated: units 1–50 at 0.10, beyond at 0.05


def graduated(units: int) -> Decimal:
    """The fee of ``units`` overage units by TIERS, computed here."""
    return Decimal("0.10") * min(units, 50) + Decimal("0.05") * max(units - 50, 0)


def schedule(*, notified_days_ago: int, currency: str = "EUR", tiers=TIERS) -> None:
    sms = Channel.objects.get(code="sms")
    created = fee_schedule_create(
        channel=sms, name=f"SMS {currency}", tiers=tiers, currency=currency,
        effective_from=NOW - timedelta(days=60), now=NOW - timedelta(days=60),
    )  # fmt: skip
    fee_schedule_notify(schedule=created, now=NOW - timedelta(days=notified_days_ago))


def use(world: World, units: int) -> None:
    assert world.alice_api.ingest([event("e", quantity=units)]).status_code == 200
    period = BillingPeriod.objects.get(tenant=world.alpha, status="open")
    sms = Channel.objects.get(code="sms")
    overage_charge_refresh(tenant=world.alpha, channel=sms, period=period)  # the evaluation


def balances(world: World) -> dict:
    response = world.alice_api.get("/api/v1/balances")
    assert response.status_code == 200, response.content
    return response.json()


def sms(body: dict) -> dict:
    return next(row for row in body["channels"] if row["channel"] == "sms")


def buy(world: World, price: str, currency: str) -> None:
    pack = TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=10, price=Decimal(price), currency=currency
    )
    offer = topup_offer_create(tenant=world.alpha, pack=pack)
    topup_offer_accept(tenant=world.alpha, public_id=offer.public_id)


def test_nothing_owed_without_overage_or_top_ups(world: World):
    set_rule(world.alpha, "sms", included_units=100)
    world.alice_api.ingest([event("e", quantity=40)])
    body = balances(world)
    assert body["amount_owed"] == []
    assert all(row["overage_charge"] is None for row in body["channels"])


def test_overage_is_priced_by_the_schedule_in_effect(world: World):
    set_rule(world.alpha, "sms", included_units=100, action="charge_overage")
    schedule(notified_days_ago=30)
    use(world, 100 + 63)
    body = balances(world)
    expected = graduated(63)  # 5.00 + 0.65
    assert sms(body)["overage_charge"] == {
        "units": 63,
        "carried_units": 0,
        "amount": f"{expected:.2f}",
        "currency": "EUR",
        "fee_schedule": "SMS EUR",
        "status": "pending",
        "owed": f"{expected:.2f}",
        "priced_at": NOW.isoformat(),
    }
    assert body["amount_owed"] == [
        {"currency": "EUR", "overage": "5.65", "topups": "0.00", "total": "5.65"}
    ]


def test_a_schedule_not_yet_in_effect_by_its_notice_prices_nothing(world: World, settings):
    settings.FEE_NOTICE_DAYS = 14
    set_rule(world.alpha, "sms", included_units=100, action="charge_overage")
    schedule(notified_days_ago=3)  # takes effect in 11 days
    use(world, 120)
    charge = sms(balances(world))["overage_charge"]
    assert (charge["units"], charge["amount"], charge["owed"]) == (20, "0.00", "0.00")


def test_top_ups_bought_add_to_the_amount_owed(world: World):
    set_rule(world.alpha, "sms", included_units=100, action="charge_overage")
    schedule(notified_days_ago=30)
    buy(world, "4.50", "EUR")
    use(world, 100 + 10 + 20)  # the pack's 10 units are credits too
    body = balances(world)
    assert sms(body)["overage_charge"]["amount"] == f"{graduated(20):.2f}"
    assert body["amount_owed"] == [
        {"currency": "EUR", "overage": "2.00", "topups": "4.50", "total": "6.50"}
    ]


def test_amounts_of_two_currencies_are_never_added(world: World):
    set_rule(world.alpha, "sms", included_units=100, action="charge_overage")
    schedule(notified_days_ago=30, currency="CHF")
    buy(world, "4.50", "EUR")
    buy(world, "3.00", "USD")
    use(world, 100 + 20 + 5)
    assert balances(world)["amount_owed"] == [
        {"currency": "CHF", "overage": "0.50", "topups": "0.00", "total": "0.50"},
        {"currency": "EUR", "overage": "0.00", "topups": "4.50", "total": "4.50"},
        {"currency": "USD", "overage": "0.00", "topups": "3.00", "total": "3.00"},
    ]


def test_a_decided_charge_owes_what_was_billed(world: World, settings):
    settings.OVERAGE_AUTO_BILL_BELOW = Decimal("0")  # staff decide
    set_rule(world.alpha, "sms", included_units=100, action="charge_overage")
    schedule(notified_days_ago=30)
    use(world, 100 + 30)
    charge = OverageCharge.objects.get(tenant=world.alpha)
    charge = overage_charge_finalize(charge=charge, announce=False)
    overage_decide(charge=charge, decision="partly_waive", waived_amount="1.00",
                   reason="goodwill", actor=None)  # fmt: skip
    owed = period_owed(tenant=world.alpha, period=charge.period)
    assert [(o.currency, o.overage, o.total) for o in owed.by_currency] == [
        ("EUR", Decimal("2.00"), Decimal("2.00"))  # 3.00 less 1.00 waived
    ]


def test_another_tenants_charges_and_top_ups_are_not_counted(world: World):
    set_rule(world.alpha, "sms", included_units=100, action="charge_overage")
    schedule(notified_days_ago=30)
    use(world, 130)
    body = world.gamma_api.get("/api/v1/balances").json()
    assert body["amount_owed"] == []
    assert all(row["overage_charge"] is None for row in body["channels"])
