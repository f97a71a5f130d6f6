"""A new tenant's welcome is its notice (issue 10, point 2): it names its terms per channel
and the fee schedules that apply to it, which then take effect ``FEE_NOTICE_DAYS`` after
the welcome; a tenant created after a global schedule was notified is not priced at 0.00
for ever."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from metering.models import BillingPeriod, Channel
from metering.services.ingest import usage_record_batch
from notifications.messages import render_message
from notifications.models import Notification
from policies.models import FeeScheduleNotice
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.overage import overage_charge_refresh
from tenants.models import Tenant
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.usefixtures("welcome")


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def sms() -> Channel:
    return Channel.objects.get(code="sms")


def publish(price: str, day: int, **kwargs):
    schedule = fee_schedule_create(
        channel=sms(), name=f"SMS {price}", tiers=[(1000, price), (None, "0.05")], now=at(day),
        **kwargs,
    )  # fmt: skip
    fee_schedule_notify(schedule=schedule, now=at(day))
    return schedule


def create_tenant(slug: str, day: int, **kwargs) -> Tenant:
    with time_machine.travel(at(day), tick=False):
        return TenantFactory.create(slug=slug, time_zone="UTC", **kwargs)


def test_a_tenant_created_after_a_global_schedule_is_charged_by_it_after_its_welcome(db):
    create_tenant("existing", day=1)
    publish("1.00", day=2)
    newcomer = create_tenant("newcomer", day=3)
    set_rule(newcomer, "sms", included_units=100, action="charge_overage", now=at(3, 13))
    assert FeeScheduleNotice.objects.get(tenant=newcomer).effective_at == at(17)

    def use(event_id: str, quantity: int, day: int) -> Decimal:
        usage_record_batch(
            tenant=newcomer,
            payload={"events": [event(event_id, quantity=quantity, occurred_at=at(day).isoformat())]},
            now=at(day, 13),
        )  # fmt: skip
        period = BillingPeriod.objects.get(tenant=newcomer, label="2026-11")
        charge = overage_charge_refresh(
            tenant=newcomer, channel=sms(), period=period, now=at(day, 14)
        )
        return charge.amount

    assert use("first-days", 150, day=10) == Decimal("0.00")  # within its notice period
    assert use("later", 10, day=20) == Decimal("10.00")


def test_the_welcome_names_the_terms_and_the_fees_that_apply(db):
    create_tenant("existing", day=1)  # the schedules below are published: notified to it
    publish("0.50", day=1)  # superseded before the tenant arrives: not its terms
    current = publish("1.00", day=2)
    later = publish("2.00", day=3, effective_from=at(25))  # announced for the 25th
    draft = fee_schedule_create(channel=sms(), name="draft", tiers=[(None, "9.00")], now=at(3))
    newcomer = create_tenant("newcomer", day=4, language="de")
    welcome = Notification.objects.get(tenant=newcomer, kind="welcome")
    channel = next(c for c in welcome.payload["channels"] if c["channel"] == "sms")
    assert {"included_units", "hard_limit", "action_past_limit", "carry_over"} <= set(channel)
    assert [f["effective_from"] for f in channel["fee_schedules"]] == [
        at(18).isoformat(),
        at(25).isoformat(),
    ]
    notices = FeeScheduleNotice.objects.filter(tenant=newcomer)
    assert {n.schedule_id for n in notices} == {current.pk, later.pk}
    assert draft.pk not in {n.schedule_id for n in notices}
    english = render_message(welcome, language="en")
    german = render_message(welcome, language="de")
    text = " ".join([english.subject, *english.lines])
    assert "Welcome" in english.subject
    assert "€1.00 per unit" in text and "18 November 2026" in text
    assert "Willkommen" in german.subject
    assert "1,00\u00a0€ pro Einheit" in " ".join(german.lines)


@pytest.mark.parametrize(
    ("hard_limit", "english"),
    [
        (None, "no hard ceiling"),
        (0, "no use beyond your credits"),
        (420, "at most 420 units beyond your credits"),
    ],
)
def test_the_welcome_states_the_hard_ceiling(db, settings, hard_limit, english):
    from policies.models import CohortDefault

    CohortDefault.objects.create(channel=sms(), included_units=100, hard_limit=hard_limit)
    newcomer = create_tenant("newcomer", day=4)
    welcome = Notification.objects.get(tenant=newcomer, kind="welcome")
    lines = " ".join(render_message(welcome, language="en").lines)
    assert english in lines
