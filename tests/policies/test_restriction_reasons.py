"""A restriction has two reasons: the internal one stays in the audit trail, the
customer-facing one is what the tenant is sent. Its end, lifted by staff or expired by
time, is told to the tenant with its scope and when."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from creditguard.errors import InvalidInput
from creditguard.models import AuditEntry
from metering.models import Channel
from notifications.messages import render_message
from notifications.models import Notification
from policies.models import Restriction
from policies.services.restrictions import (
    restriction_apply,
    restriction_lift,
    restrictions_expire,
)
from tests.conftest import NOW, World

pytestmark = pytest.mark.usefixtures("frozen_clock")

INTERNAL = "Suspected SIM-farm fraud, ticket 4711"
CUSTOMER = "Unusually many messages to premium numbers from your account"


def throttle(world: World, **extra) -> Restriction:
    return restriction_apply(
        tenant=world.alpha,
        channel=Channel.objects.get(code="sms"),
        kind="throttle",
        limit_units=10,
        window="hour",
        reason=INTERNAL,
        customer_reason=CUSTOMER,
        actor=None,
        **extra,
    )


def notification(world: World, kind: str) -> Notification:
    return Notification.objects.get(tenant=world.alpha, kind=kind)


def test_the_customer_reason_is_sent_and_the_internal_one_is_not(world: World):
    restriction = throttle(world)
    applied = notification(world, "restriction_applied")
    assert applied.payload["reason"] == CUSTOMER
    assert INTERNAL not in json.dumps(applied.payload)
    message = render_message(applied, language="en")
    assert f"Reason: {CUSTOMER}" in message.lines
    assert INTERNAL not in json.dumps(message.as_data())
    assert restriction.customer_reason == CUSTOMER
    entry = AuditEntry.objects.get(action="restriction.apply")
    assert entry.reason == INTERNAL
    assert entry.after["customer_reason"] == CUSTOMER


@pytest.mark.parametrize("customer_reason", ["", "   "])
def test_a_restriction_needs_a_reason_for_the_customer(world: World, customer_reason):
    with pytest.raises(InvalidInput, match="customer"):
        restriction_apply(
            tenant=world.alpha,
            channel=None,
            kind="suspend",
            reason=INTERNAL,
            customer_reason=customer_reason,
            actor=None,
        )
    assert not Restriction.objects.exists()


def test_lifting_tells_the_tenant_the_scope_and_when(world: World, frozen_clock):
    restriction = throttle(world, duration=timedelta(days=2))
    frozen_clock.shift(timedelta(hours=3))
    restriction_lift(restriction=restriction, reason="Ticket 4711 closed", actor=None)
    lifted = notification(world, "restriction_lifted")
    assert lifted.payload["channel"] == "sms"
    assert lifted.payload["ended"] == "lifted"
    assert lifted.payload["ended_at"] == (NOW + timedelta(hours=3)).isoformat()
    assert "Ticket 4711" not in json.dumps(lifted.payload)
    message = render_message(lifted, language="en")  # Alpha is in Europe/Berlin
    assert message.subject == "SMS: the restriction has been lifted"
    assert message.lines == [
        "Since 20 November 2026, 16:00 CET, you can send on SMS again as usual."
    ]


def test_an_expired_restriction_tells_the_tenant_when_it_ended(world: World, frozen_clock):
    throttle(world, duration=timedelta(hours=1))
    frozen_clock.shift(timedelta(hours=1, minutes=1))
    restrictions_expire()
    ended = notification(world, "restriction_lifted")
    assert ended.payload["ended"] == "expired"
    assert ended.payload["ended_at"] == (NOW + timedelta(hours=1)).isoformat()
    message = render_message(ended, language="en")
    assert message.subject == "SMS: the restriction has ended"
    assert message.lines == [
        "Since 20 November 2026, 14:00 CET, you can send on SMS again as usual."
    ]


def test_the_end_is_told_in_german_with_its_time(world: World, frozen_clock):
    world.alpha.language = "de"
    world.alpha.save()
    throttle(world, duration=timedelta(hours=1))
    frozen_clock.shift(timedelta(hours=2))
    restrictions_expire()
    message = render_message(notification(world, "restriction_lifted"), language="de")
    assert message.subject == "SMS: die Einschränkung ist beendet"
    assert message.lines == [
        "Seit 20. November 2026, 14:00 MEZ können Sie über SMS wieder wie gewohnt senden."
    ]
