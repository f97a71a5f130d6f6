"""The tenant is told every decision on its overage (issue 10, points 4 and 6): billed,
waived or partly waived, with the amounts and the reason written for it — never staff's
internal reason. What cannot be carried over is decided like any overage, and told."""

from __future__ import annotations

from decimal import Decimal

import pytest

from metering.models import BillingPeriod, Channel
from notifications.messages import render_message
from notifications.models import Notification
from policies.models import OverageCharge
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.overage import (
    overage_charge_finalize,
    overage_charge_refresh,
    overage_decide,
)
from tests.conftest import World, event
from tests.policies.helpers import set_rule


@pytest.fixture
def final_charge(world: World, settings) -> OverageCharge:
    """Alpha's 150 SMS over at 0.10, final: 15.00 EUR, above the auto-bill threshold."""
    settings.FEE_NOTICE_DAYS = 0
    sms = Channel.objects.get(code="sms")
    set_rule(world.alpha, "sms", included_units=100, action="notify_only")
    fee_schedule_notify(
        schedule=fee_schedule_create(channel=sms, name="SMS", tiers=[(None, "0.10")])
    )
    world.alice_api.ingest([event("o1", channel="sms", quantity=250)])
    period = BillingPeriod.objects.get(tenant=world.alpha)
    charge = overage_charge_refresh(tenant=world.alpha, channel=sms, period=period)
    assert charge is not None
    return overage_charge_finalize(charge=charge)


def decision_notice(world: World) -> Notification:
    return Notification.objects.get(tenant=world.alpha, kind="overage_decided")


def test_finalising_a_charge_left_to_staff_tells_nothing_yet(world: World, final_charge):
    assert final_charge.status == "pending"
    assert not Notification.objects.filter(tenant=world.alpha, kind="overage_decided").exists()


def test_a_bill_is_told_with_its_amount_and_the_customers_reason(world: World, final_charge):
    overage_decide(
        charge=final_charge, decision="bill", reason="Repeat offender, see ticket 12",
        customer_reason="Your use stayed above your credits all month.", actor=None,
    )  # fmt: skip
    note = decision_notice(world)
    assert (note.payload["status"], note.payload["billed_amount"]) == ("billed", "15.00")
    assert "ticket 12" not in str(note.payload)
    message = render_message(note, language="en")
    assert message.lines[0].startswith("Your 150 units beyond your credits on SMS in ")
    assert message.lines[0].endswith(" are billed: €15.00.")
    assert message.lines[1:] == ["Reason: Your use stayed above your credits all month."]
    assert "15,00\u00a0€" in " ".join(render_message(note, language="de").lines)


def test_a_waiver_and_a_partial_waiver_are_told(world: World, final_charge):
    overage_decide(
        charge=final_charge, decision="partly_waive", waived_amount="5.00", reason="goodwill",
        actor=None,
    )  # fmt: skip
    line = render_message(decision_notice(world), language="en").lines[0]
    assert "we waive €5.00 and bill €10.00" in line
    assert len(render_message(decision_notice(world), language="en").lines) == 1  # no reason


def test_an_automatic_bill_is_told(world: World, settings):
    settings.FEE_NOTICE_DAYS = 0
    settings.OVERAGE_AUTO_BILL_BELOW = Decimal("100.00")
    sms = Channel.objects.get(code="sms")
    set_rule(world.alpha, "sms", included_units=100, action="charge_overage")
    fee_schedule_notify(
        schedule=fee_schedule_create(channel=sms, name="SMS", tiers=[(None, "0.10")])
    )
    world.alice_api.ingest([event("o1", channel="sms", quantity=250)])
    period = BillingPeriod.objects.get(tenant=world.alpha)
    charge = overage_charge_refresh(tenant=world.alpha, channel=sms, period=period)
    assert charge is not None
    overage_charge_finalize(charge=charge)
    note = decision_notice(world)
    assert (note.payload["status"], note.payload["billed_amount"]) == ("billed", "15.00")
    assert "Automatically" not in str(note.payload)  # the internal reason stays inside
