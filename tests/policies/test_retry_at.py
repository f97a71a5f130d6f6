"""A denial says when to ask again (``retry_at``, UTC): a windowed cap's next window, or
the end of the restriction that refused, whichever frees the request first; null when
waiting alone will not help. Asking at ``retry_at`` is then allowed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from metering.models import Channel
from policies.services.caps import window_end
from policies.services.restrictions import restriction_apply
from tests.conftest import NOW, World
from tests.factories import TenantFactory
from tests.policies.helpers import authorize, set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock", "authorization_path")


def restrict(world: World, channel: str | None = "sms", **terms):
    return restriction_apply(
        tenant=world.alpha,
        channel=Channel.objects.get(code=channel) if channel else None,
        reason="load",
        customer_reason="load",
        actor=None,
        **terms,
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_rules_hourly_cap_says_the_next_hour_and_it_is_allowed_then(world: World, frozen_clock):
    set_rule(world.alpha, "sms", included_units=10, action="restrict", restrict_units=5,
             restrict_window="hour")  # fmt: skip
    frozen_clock.move_to(NOW + timedelta(minutes=20))
    assert authorize(world.alice_api, "sms", 15).json()["decision"] == "allow_overage"  # 5 over
    denied = authorize(world.alice_api, "sms", 1).json()
    assert (denied["reason"], denied["retry_at"]) == (
        "channel_restricted",
        "2026-11-20T13:00:00+00:00",
    )
    frozen_clock.move_to(at(denied["retry_at"]) - timedelta(seconds=1))
    assert authorize(world.alice_api, "sms", 1).json()["reason"] == "channel_restricted"
    frozen_clock.move_to(at(denied["retry_at"]))
    assert authorize(world.alice_api, "sms", 1).json()["decision"] == "allow_overage"


def test_a_staff_daily_throttle_says_the_tenants_next_midnight(world: World, frozen_clock):
    restrict(world, kind="throttle", limit_units=10, window="day")
    authorize(world.alice_api, "sms", 8)
    denied = authorize(world.alice_api, "sms", 5).json()
    # Berlin's midnight after 20 November 13:00 CET, in UTC
    assert denied["retry_at"] == "2026-11-20T23:00:00+00:00"
    frozen_clock.move_to(at(denied["retry_at"]))
    assert authorize(world.alice_api, "sms", 5).json()["decision"] == "allow"


def test_a_throttle_ending_before_the_next_window_says_its_end(world: World):
    restriction = restrict(world, channel=None, kind="throttle", limit_units=3, window="day",
                           duration=timedelta(hours=2))  # fmt: skip
    authorize(world.alice_api, "email", 3)
    denied = authorize(world.alice_api, "sms", 1).json()
    assert at(denied["retry_at"]) == restriction.ends_at


def test_a_request_larger_than_a_throttle_waits_for_its_end_or_never(world: World):
    temporary = restrict(world, kind="throttle", limit_units=3, window="hour",
                         duration=timedelta(days=2))  # fmt: skip
    assert at(authorize(world.alice_api, "sms", 4).json()["retry_at"]) == temporary.ends_at
    restrict(world, kind="throttle", limit_units=3, window="hour")  # and a permanent one
    body = authorize(world.alice_api, "sms", 4).json()
    assert (body["reason"], body["retry_at"]) == ("channel_restricted", None)


def test_a_request_larger_than_a_rules_cap_is_told_no_time(world: World):
    set_rule(world.alpha, "sms", included_units=0, action="restrict", restrict_units=5,
             restrict_window="day")  # fmt: skip
    body = authorize(world.alice_api, "sms", 6).json()
    assert (body["reason"], body["retry_at"]) == ("channel_restricted", None)


def test_a_suspension_with_an_end_says_its_end_and_a_permanent_one_none(world: World):
    suspension = restrict(world, kind="suspend", duration=timedelta(hours=5))
    body = authorize(world.alice_api, "sms", 1).json()
    assert (body["reason"], at(body["retry_at"])) == ("channel_suspended", suspension.ends_at)
    restrict(world, channel=None, kind="suspend")  # and the whole tenant, with no end
    assert authorize(world.alice_api, "sms", 1).json()["retry_at"] is None
    assert authorize(world.alice_api, "email", 1).json()["retry_at"] is None


def test_every_cap_that_has_no_room_is_waited_for(world: World):
    restrict(world, kind="throttle", limit_units=5, window="hour")
    daily = restrict(world, channel=None, kind="throttle", limit_units=5, window="day",
                     duration=timedelta(hours=3))  # fmt: skip
    authorize(world.alice_api, "sms", 5)  # both full
    assert at(authorize(world.alice_api, "sms", 1).json()["retry_at"]) == daily.ends_at


def test_overlapping_suspensions_say_the_last_end(world: World):
    restrict(world, kind="suspend", duration=timedelta(hours=1))
    later = restrict(world, channel=None, kind="suspend", duration=timedelta(hours=3))
    assert at(authorize(world.alice_api, "sms", 1).json()["retry_at"]) == later.ends_at


@pytest.mark.parametrize(
    ("terms", "quantity"),
    [
        ({"included_units": 5, "hard_limit": 0}, 6),
        ({"included_units": 5, "action": "suspend"}, 6),
        ({"included_units": 100}, 1),
    ],
)
def test_credits_and_limits_give_no_retry_at(world: World, terms, quantity):
    set_rule(world.alpha, "sms", **terms)
    assert authorize(world.alice_api, "sms", quantity).json()["retry_at"] is None


def test_the_replay_and_the_read_give_the_same_retry_at(world: World):
    restrict(world, kind="throttle", limit_units=2, window="hour")
    authorize(world.alice_api, "sms", 2)
    denied = authorize(world.alice_api, "sms", 1, idempotency_key="k").json()
    assert denied["retry_at"] == "2026-11-20T13:00:00+00:00"
    with time_machine.travel(NOW + timedelta(minutes=30), tick=False):
        assert authorize(world.alice_api, "sms", 1, idempotency_key="k").json() == denied
        read = world.alice_api.get(f"/api/v1/authorizations/{denied['id']}").json()
    assert read["retry_at"] == denied["retry_at"]


@pytest.mark.parametrize(
    ("local", "zone", "expected"),
    [
        ("2026-03-29T01:30", "Europe/Berlin", "2026-03-29T22:00"),  # a 23-hour day
        ("2026-10-25T12:00", "Europe/Berlin", "2026-10-25T23:00"),  # a 25-hour day
        ("2026-11-20T23:59", "America/New_York", "2026-11-21T05:00"),
    ],
)
def test_a_day_window_ends_at_the_local_midnight_across_dst(local, zone, expected):
    tenant = TenantFactory.build(time_zone=zone)
    moment = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone))
    assert window_end(at=moment, window="day", tenant=tenant) == datetime.fromisoformat(
        expected
    ).replace(tzinfo=UTC)
