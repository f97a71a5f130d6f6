"""Carry-over (issue 10, point 4): a unit of overage is carried into the next period's
included credits or charged, never both; what cannot be carried is charged (billed or
waived by the normal decision), and the tenant is told the figures."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import time_machine

from metering.models import Balance, Channel
from metering.services.ingest import usage_record_batch
from notifications.messages import render_message
from notifications.models import Notification
from policies.models import OverageCharge
from policies.services.close import periods_close_due
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from tenants.models import Tenant
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule


def at(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def carrying_tenant(used: int) -> Tenant:
    """100 SMS included, overage charged at 0.04 and carried over; ``used`` in November."""
    sms = Channel.objects.get(code="sms")
    tenant = TenantFactory.create(slug="carry", time_zone="UTC")
    set_rule(tenant, "sms", included_units=100, action="charge_overage", carry_over="carry",
             now=at(2026, 10, 2))  # fmt: skip
    schedule = fee_schedule_create(
        channel=sms, name="SMS", tiers=[(None, "0.04")], now=at(2026, 10, 1)
    )
    fee_schedule_notify(schedule=schedule, now=at(2026, 10, 1))  # in effect from 15 October
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event("a", quantity=used, occurred_at="2026-11-10T00:00:00Z")]},
        now=at(2026, 11, 10, 1),
    )
    with time_machine.travel(at(2026, 12, 1, 2), tick=False):
        periods_close_due()
    return tenant


def test_overage_beyond_what_can_be_carried_is_charged_not_dropped(db):
    # The case: 200 over, the next period has 100 included to carry into.
    tenant = carrying_tenant(used=300)
    charge = OverageCharge.objects.get(tenant=tenant)
    assert (charge.units, charge.carried_units, charge.amount, charge.status) == (
        200,
        100,
        Decimal("4.00"),  # the 100 not carried, at 0.04; not 8.00 for all 200
        "billed",
    )
    december = Balance.objects.get(tenant=tenant, channel__code="sms", period__label="2026-12")
    assert december.available == 0
    note = Notification.objects.get(tenant=tenant, kind="overage_carried")
    assert {k: note.payload[k] for k in ("overage_units", "carried_units", "charged_units")} == {
        "overage_units": 200,
        "carried_units": 100,
        "charged_units": 100,
    }
    english = " ".join(render_message(note, language="en").lines)
    assert "100 of the 200 units" in english
    assert "The other 100 units could not be carried over and are billed: €4.00." in english
    german = " ".join(render_message(note, language="de").lines)
    assert "4,00\u00a0€" in german


def test_overage_carried_in_full_is_not_charged(db):
    tenant = carrying_tenant(used=130)
    charge = OverageCharge.objects.get(tenant=tenant)
    assert (charge.units, charge.carried_units, charge.amount) == (30, 30, Decimal("0.00"))
    december = Balance.objects.get(tenant=tenant, channel__code="sms", period__label="2026-12")
    assert december.available == 70
    note = Notification.objects.get(tenant=tenant, kind="overage_carried")
    assert note.payload["charged_units"] == 0
    lines = render_message(note, language="en").lines
    assert len(lines) == 1 and "30 of the 30 units" in lines[0]


def test_overage_left_to_staff_says_so(db, settings):
    settings.OVERAGE_AUTO_BILL_BELOW = Decimal("1.00")
    tenant = carrying_tenant(used=300)
    assert OverageCharge.objects.get(tenant=tenant).status == "pending"
    note = Notification.objects.get(tenant=tenant, kind="overage_carried")
    english = " ".join(render_message(note, language="en").lines)
    assert "we will tell you whether they are billed (€4.00) or waived" in english
