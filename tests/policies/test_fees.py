"""Fee schedules: known answers for graduated and volume tiers, rounding, and advance notice."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from creditguard.errors import InvalidInput
from creditguard.money import round_money
from metering.models import Channel
from policies.models import FeeSchedule, FeeTier
from policies.services.fees import (
    fee_for_units,
    fee_schedule_create,
    fee_schedule_in_effect,
    fee_schedule_notify,
)
from tests.conftest import World

TIERS = [
    FeeTier(up_to=1000, unit_price=Decimal("0.05")),
    FeeTier(up_to=5000, unit_price=Decimal("0.04")),
    FeeTier(up_to=None, unit_price=Decimal("0.03")),
]


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        (0, "0.00"),
        (1, "0.05"),
        (1000, "50.00"),
        (1001, "50.04"),
        (5000, "210.00"),
        (6000, "240.00"),
    ],
)
def test_graduated_tiers_price_each_tier_its_own_units(units, expected):
    assert fee_for_units(mode="graduated", tiers=TIERS, units=units, currency="EUR") == Decimal(
        expected
    )


@pytest.mark.parametrize(
    ("units", "expected"),
    [(0, "0.00"), (1000, "50.00"), (1001, "40.04"), (5000, "200.00"), (5001, "150.03")],
)
def test_volume_tiers_price_all_units_at_the_reached_tier(units, expected):
    assert fee_for_units(mode="volume", tiers=TIERS, units=units, currency="EUR") == Decimal(
        expected
    )


@pytest.mark.parametrize(
    ("price", "units", "currency", "expected"),
    [
        ("0.0125", 3, "EUR", "0.04"),
        ("0.0125", 1, "EUR", "0.01"),
        ("0.005", 1, "EUR", "0.01"),
        ("0.015", 1, "EUR", "0.02"),
        ("1.5", 3, "JPY", "5"),
        ("0.0005", 1, "KWD", "0.001"),
    ],
)
def test_amounts_round_once_half_up_to_the_minor_unit(price, units, currency, expected):
    tiers = [FeeTier(up_to=None, unit_price=Decimal(price))]
    assert fee_for_units(mode="graduated", tiers=tiers, units=units, currency=currency) == Decimal(
        expected
    )


def test_rounding_happens_once_not_per_tier():
    # 3 units at 0.0125 in three tiers of one unit: 0.0375 → 0.04 (per-tier rounding would give 0.03).
    tiers = [
        FeeTier(up_to=1, unit_price=Decimal("0.0125")),
        FeeTier(up_to=2, unit_price=Decimal("0.0125")),
        FeeTier(up_to=None, unit_price=Decimal("0.0125")),
    ]
    assert fee_for_units(mode="graduated", tiers=tiers, units=3, currency="EUR") == Decimal("0.04")
    assert round_money(Decimal("2.675"), "EUR") == Decimal("2.68")


def make_schedule(tenant=None, price="0.10", **kwargs) -> FeeSchedule:
    return fee_schedule_create(
        channel=Channel.objects.get(code="sms"),
        name="SMS overage",
        tiers=[(None, price)],
        tenant=tenant,
        **kwargs,
    )


@pytest.fixture
def no_notice_period(settings):
    settings.FEE_NOTICE_DAYS = 0


def test_a_schedule_not_yet_notified_does_not_apply(world: World, no_notice_period):
    sms = Channel.objects.get(code="sms")
    schedule = make_schedule()
    assert fee_schedule_in_effect(tenant=world.alpha, channel=sms, at=timezone.now()) is None
    assert fee_schedule_notify(schedule=schedule, tenants=[world.alpha]) == 1
    assert fee_schedule_in_effect(tenant=world.alpha, channel=sms, at=timezone.now()) == schedule
    assert fee_schedule_in_effect(tenant=world.beta, channel=sms, at=timezone.now()) is None


def test_until_notified_the_previous_schedule_applies(world: World, no_notice_period):
    sms = Channel.objects.get(code="sms")
    day = timedelta(days=1)
    t0 = timezone.now() - 10 * day
    old = make_schedule(price="0.10", now=t0)
    fee_schedule_notify(schedule=old, now=t0)
    new = make_schedule(price="0.20", now=t0 + day)
    assert fee_schedule_in_effect(tenant=world.alpha, channel=sms, at=t0 + 2 * day) == old
    fee_schedule_notify(schedule=new, now=t0 + 3 * day)
    assert fee_schedule_in_effect(tenant=world.alpha, channel=sms, at=t0 + 2 * day) == old
    assert fee_schedule_in_effect(tenant=world.alpha, channel=sms, at=t0 + 3 * day) == new


def test_tenant_override_applies_before_the_global_default_once_notified(
    world: World, no_notice_period
):
    sms = Channel.objects.get(code="sms")
    fee_schedule_notify(schedule=make_schedule(price="0.10"))
    override = make_schedule(tenant=world.alpha, price="0.07")
    assert fee_schedule_in_effect(tenant=world.alpha, channel=sms, at=timezone.now()).tenant is None
    fee_schedule_notify(schedule=override)
    assert fee_schedule_in_effect(tenant=world.alpha, channel=sms, at=timezone.now()) == override
    assert fee_schedule_in_effect(tenant=world.beta, channel=sms, at=timezone.now()).tenant is None


def test_notifying_twice_keeps_the_first_time(world: World):
    schedule = make_schedule()
    fee_schedule_notify(schedule=schedule, tenants=[world.alpha])
    first = schedule.notices.get().notified_at
    assert fee_schedule_notify(schedule=schedule, tenants=[world.alpha]) == 0
    assert schedule.notices.get().notified_at == first


def test_a_tenants_override_is_notified_to_that_tenant_only(world: World):
    with pytest.raises(InvalidInput):
        fee_schedule_notify(schedule=make_schedule(tenant=world.alpha), tenants=[world.beta])


@pytest.mark.parametrize(
    "tiers",
    [
        [],
        [(100, "0.1")],
        [(None, "0.1"), (None, "0.2")],
        [(100, "0.1"), (50, "0.2"), (None, "0.1")],
        [(None, "-1")],
        [(None, "abc")],
        [(0, "0.1"), (None, "0.1")],
    ],
)
def test_invalid_tiers_are_refused(db, tiers):
    with pytest.raises(InvalidInput):
        fee_schedule_create(channel=Channel.objects.get(code="sms"), name="x", tiers=tiers)
    assert not FeeSchedule.objects.exists()


def test_units_past_a_bounded_last_tier_are_never_free():
    # The service refuses such tiers; a schedule stored before that check still charges.
    tiers = [FeeTier(up_to=100, unit_price=Decimal("0.10"))]
    assert fee_for_units(mode="graduated", tiers=tiers, units=1000, currency="EUR") == Decimal(
        "100.00"
    )
    assert fee_for_units(mode="volume", tiers=tiers, units=1000, currency="EUR") == Decimal(
        "100.00"
    )
