"""Overage charges: kept current, finalised, decided once (bill, waive, partly waive), audited."""

from __future__ import annotations

from decimal import Decimal

import pytest

from creditguard.errors import Conflict, InvalidInput, Unprocessable
from creditguard.models import AuditEntry
from metering.models import BillingPeriod, Channel
from policies.models import OverageCharge
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.overage import (
    overage_charge_finalize,
    overage_charge_refresh,
    overage_decide,
)
from tests.conftest import World, event
from tests.factories import UserFactory
from tests.policies.helpers import set_rule


@pytest.fixture
def charged(world: World, settings) -> OverageCharge:
    """Alpha used 250 SMS of 100 included, at 0.10 per unit beyond: 15.00 EUR (a schedule
    notified with no notice period, so that it prices the usage that follows at once)."""
    settings.FEE_NOTICE_DAYS = 0
    sms = Channel.objects.get(code="sms")
    set_rule(world.alpha, "sms", included_units=100, action="charge_overage")
    fee_schedule_notify(
        schedule=fee_schedule_create(channel=sms, name="SMS", tiers=[(None, "0.10")])
    )
    world.alice_api.ingest([event("o1", channel="sms", quantity=250)])
    period = BillingPeriod.objects.get(tenant=world.alpha)
    charge = overage_charge_refresh(tenant=world.alpha, channel=sms, period=period)
    assert charge is not None
    return charge


def test_charge_follows_usage_and_the_fee_schedule(world: World, charged: OverageCharge):
    assert (charged.units, charged.amount, charged.currency, charged.status) == (
        150,
        Decimal("15.00"),
        "EUR",
        "pending",
    )
    world.alice_api.ingest([event("o2", channel="sms", quantity=50)])
    refreshed = overage_charge_refresh(
        tenant=world.alpha, channel=charged.channel, period=charged.period
    )
    assert (refreshed.pk, refreshed.units, refreshed.amount) == (charged.pk, 200, Decimal("20.00"))


def test_no_charge_without_overage(world: World):
    world.alice_api.ingest([event("o", channel="sms", quantity=5)])
    period = BillingPeriod.objects.get(tenant=world.alpha)
    assert (
        overage_charge_refresh(
            tenant=world.alpha, channel=Channel.objects.get(code="sms"), period=period
        )
        is None
    )


def test_factors_show_use_relationship_and_system_impact(charged: OverageCharge):
    factors = charged.factors
    assert factors["type_of_use"] == {"channel": "sms", "share_of_period_usage": 1.0}
    assert (
        factors["relationship"]["earlier_waivers"] == 0
        and factors["relationship"]["tenure_days"] == 0
    )
    assert 0 < factors["system_impact"]["share_of_channel_capacity"] < 1


def test_a_charge_is_decided_only_once_the_period_is_final(charged: OverageCharge):
    with pytest.raises(Unprocessable):
        overage_decide(charge=charged, decision="bill", reason="x", actor=None)


@pytest.mark.parametrize(
    ("decision", "waived", "status", "billed", "waived_amount"),
    [
        ("bill", None, "billed", "15.00", "0.00"),
        ("waive", None, "waived", "0.00", "15.00"),
        ("partly_waive", "4.50", "partly_waived", "10.50", "4.50"),
    ],
)
def test_each_decision_sets_amounts_and_writes_an_audit_row(
    charged, decision, waived, status, billed, waived_amount
):
    staff = UserFactory.create(username="bea", is_staff=True)
    charge = overage_charge_finalize(charge=charged)
    decided = overage_decide(
        charge=charge, decision=decision, waived_amount=waived, reason="Good customer", actor=staff
    )
    assert (decided.status, decided.billed_amount, decided.waived_amount) == (
        status,
        Decimal(billed),
        Decimal(waived_amount),
    )
    audit = AuditEntry.objects.get(action=f"overage.{decision}")
    assert (audit.actor, audit.reason, audit.before["status"], audit.after["status"]) == (
        staff,
        "Good customer",
        "pending",
        status,
    )
    assert audit.after["factors"]["type_of_use"]["channel"] == "sms"


def test_a_second_decision_is_refused(charged):
    charge = overage_charge_finalize(charge=charged)
    overage_decide(charge=charge, decision="waive", reason="goodwill", actor=None)
    with pytest.raises(Conflict, match="decided already"):
        overage_decide(charge=charge, decision="bill", reason="changed my mind", actor=None)
    assert OverageCharge.objects.get(pk=charge.pk).status == "waived"


@pytest.mark.parametrize(
    ("decision", "waived"),
    [("partly_waive", "0"), ("partly_waive", "15.00"), ("partly_waive", "lots"), ("refund", None)],
)
def test_bad_decisions_are_refused(charged, decision, waived):
    charge = overage_charge_finalize(charge=charged)
    with pytest.raises(InvalidInput):
        overage_decide(
            charge=charge, decision=decision, waived_amount=waived, reason="x", actor=None
        )


def test_a_decision_needs_a_reason(charged):
    with pytest.raises(InvalidInput, match="reason"):
        overage_decide(
            charge=overage_charge_finalize(charge=charged), decision="bill", reason="", actor=None
        )


def test_small_charges_of_charge_overage_rules_are_billed_automatically(
    world: World, settings, charged
):
    settings.OVERAGE_AUTO_BILL_BELOW = Decimal("20.00")
    charge = overage_charge_finalize(charge=charged)
    assert (charge.status, charge.billed_amount) == ("billed", Decimal("15.00"))
    assert AuditEntry.objects.get(action="overage.bill").actor_label == "system"


def test_finalised_charge_never_changes(world: World, charged):
    charge = overage_charge_finalize(charge=charged)
    world.alice_api.ingest([event("late", channel="sms", quantity=100)])
    again = overage_charge_refresh(tenant=world.alpha, channel=charge.channel, period=charge.period)
    assert (again.units, again.amount) == (150, Decimal("15.00"))
    assert overage_charge_finalize(charge=charge).finalized_at == charge.finalized_at


def test_customers_keys_cannot_decide_anything(world: World, charged):
    for path in (
        f"/api/v1/overage-charges/{charged.pk}/decide",
        f"/api/v1/overage-charges/{charged.pk}",
    ):
        assert (
            world.alice_api.post(path, {"decision": "waive", "reason": "please"}).status_code == 404
        )
    assert OverageCharge.objects.get(pk=charged.pk).status == "pending"


@pytest.mark.parametrize("how", ["limit_raise", "topup"])
def test_the_charge_follows_overage_down_to_zero_after_credits_are_added(
    world: World, charged: OverageCharge, how: str
):
    """A limit raise or a purchased top-up that covers the overage leaves no pending
    charge of the units it covered: the evaluation refreshes the charge whenever the
    balance moved and a charge is open, not only while the balance is over."""
    from policies.models import TopUpPack
    from policies.services.evaluate import evaluate_pending
    from policies.services.topups import topup_offer_accept, topup_offer_create

    evaluate_pending()
    if how == "limit_raise":
        set_rule(world.alpha, "sms", included_units=300, action="charge_overage")
    else:
        pack = TopUpPack.objects.create(channel=charged.channel, units=500, price=Decimal("9.00"))
        offer = topup_offer_create(tenant=world.alpha, pack=pack)
        topup_offer_accept(tenant=world.alpha, public_id=offer.public_id)
    evaluate_pending()
    charged.refresh_from_db()
    assert (charged.units, charged.amount, charged.status) == (0, Decimal("0.00"), "pending")


def test_a_charge_with_nothing_left_to_charge_is_settled_at_close_without_a_message(
    world: World, charged: OverageCharge
):
    """Under notify_only nothing is billed automatically, but a charge whose overage was
    covered later has nothing to decide: the close settles it at 0.00 and tells no one."""
    from notifications.models import Notification
    from policies.services.evaluate import evaluate_pending

    set_rule(world.alpha, "sms", included_units=300, action="notify_only")
    evaluate_pending()
    finalized = overage_charge_finalize(charge=charged)
    assert (finalized.units, finalized.status, finalized.billed_amount) == (
        0,
        "billed",
        Decimal("0.00"),
    )
    assert not Notification.objects.filter(kind="overage_decided").exists()


def test_a_charge_no_schedule_priced_is_settled_at_close_without_a_message(world: World):
    """Units used before any fee schedule took effect for the tenant are priced at 0.00
    (the demo's CodeCraft: 930 e-mails, €0.00 "Pending decision"). Billing or waiving
    0.00 is the same: the close settles it, as docs/API.md says, and tells no one."""
    from notifications.models import Notification

    sms = Channel.objects.get(code="sms")
    set_rule(world.alpha, "sms", included_units=100, action="notify_only")
    world.alice_api.ingest([event("o1", channel="sms", quantity=250)])
    period = BillingPeriod.objects.get(tenant=world.alpha)
    charge = overage_charge_refresh(tenant=world.alpha, channel=sms, period=period)
    assert charge is not None and (charge.units, charge.amount) == (150, Decimal("0.00"))
    finalized = overage_charge_finalize(charge=charge)
    assert (finalized.status, finalized.billed_amount, finalized.decision_reason) == (
        "billed",
        Decimal("0.00"),
        "Automatically settled: no fee schedule priced its units",
    )
    assert not OverageCharge.objects.filter(status="pending").exists()
    assert not Notification.objects.filter(kind="overage_decided").exists()


def test_a_customer_since_its_first_period_not_since_its_row_was_made(world: World):
    """An account with months of history (the demo's, an imported one) was created today:
    its charges read "0 days a customer" (−1 at a close just after). Tenure counts from
    its first billing period to the end of the charge's period."""
    from datetime import timedelta

    from django.utils import timezone

    from metering.services.ingest import usage_record_batch
    from metering.services.periods import period_bounds
    from policies.services.close import periods_close_due

    now = timezone.now()
    last = period_bounds(tenant=world.alpha, at=now).starts_at - timedelta(days=10)
    first = last - timedelta(days=62)
    for name, quantity, at in [("early", 5, first), ("over", 2500, last)]:
        usage_record_batch(
            tenant=world.alpha,
            payload={"events": [event(name, quantity=quantity, occurred_at=at.isoformat())]},
            now=at + timedelta(minutes=1),
        )  # fmt: skip
    periods_close_due(now=now)
    charge = OverageCharge.objects.get(tenant=world.alpha)
    began = BillingPeriod.objects.filter(tenant=world.alpha).order_by("starts_at").first()
    assert began is not None and began.starts_at < world.alpha.created_at
    tenure = charge.factors["relationship"]["tenure_days"]
    assert tenure == (charge.period.ends_at - began.starts_at).days > 60
