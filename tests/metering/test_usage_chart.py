"""The portal's usage chart (metering.usage.usage_chart): a period's usage per channel by
day or hour in the tenant's zone, with its running total and the included line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metering.services.ingest import usage_record_batch
from metering.usage import usage_chart
from tests.conftest import World, event
from tests.policies.helpers import set_rule

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 13:00 in Berlin


def ingest(world: World, events: list[dict], now: datetime = NOW) -> None:
    usage_record_batch(tenant=world.alpha, payload={"events": events}, now=now)


def test_this_period_by_day_with_running_total_and_included_line(world: World):
    set_rule(world.alpha, "sms", included_units=100, now=NOW - timedelta(days=30))
    ingest(
        world,
        [
            event("a", quantity=4, occurred_at="2026-11-01T00:30:00+01:00"),
            event("b", quantity=6, occurred_at="2026-11-19T23:59:00+01:00"),
            event("c", quantity=5, occurred_at="2026-11-18T23:30:00+00:00"),  # the 19th in Berlin
        ],
    )
    chart = usage_chart(tenant=world.alpha, now=NOW)
    assert chart.bounds.label == "2026-11"
    assert chart.until == NOW
    assert [p.label for p in chart.periods][:3] == ["2026-11", "2026-10", "2026-09"]
    assert len(chart.periods) == 13
    sms = next(c for c in chart.channels if c.channel.code == "sms")
    assert sms.included == 100
    assert sms.total == 15
    assert len(sms.points) == 20  # 1 to 20 November
    assert sms.points[0].start.isoformat() == "2026-11-01T00:00:00+01:00"
    quantities = {p.start.day: p.quantity for p in sms.points if p.quantity}
    assert quantities == {1: 4, 19: 11}
    assert [p.cumulative for p in sms.points][17:] == [4, 15, 15]
    email = next(c for c in chart.channels if c.channel.code == "email")
    assert email.total == 0 and all(p.cumulative == 0 for p in email.points)


def test_an_earlier_period_by_hour(world: World):
    october = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # Berlin leaves summer time at 03:00
    ingest(
        world,
        [
            event("x", channel="email", quantity=2, occurred_at=october.isoformat()),
            event(
                "y",
                channel="email",
                quantity=3,
                occurred_at=(october + timedelta(hours=1)).isoformat(),
            ),
        ],
        now=october + timedelta(hours=2),
    )
    chart = usage_chart(tenant=world.alpha, periods_ago=1, granularity="hour", now=NOW)
    assert chart.bounds.label == "2026-10"
    assert chart.until == chart.bounds.ends_at
    email = next(c for c in chart.channels if c.channel.code == "email")
    assert len(email.points) == 31 * 24 + 1  # the 25th has 25 hours
    used = [(p.start.isoformat(), p.quantity) for p in email.points if p.quantity]
    # 02:00-03:00 happened twice: two buckets
    assert used == [("2026-10-25T02:00:00+02:00", 2), ("2026-10-25T02:00:00+01:00", 3)]
    assert email.total == 5 and email.points[-1].cumulative == 5


@pytest.mark.parametrize("days", [0, 3, 40])
def test_the_chart_takes_a_fixed_number_of_queries_whatever_the_history(world: World, days):
    for back in range(days):
        moment = NOW - timedelta(days=back, hours=1)
        ingest(
            world,
            [
                event(f"h{back}-{c}", channel=c, occurred_at=moment.isoformat())
                for c in ("sms", "call")
            ],
            now=moment + timedelta(minutes=1),
        )
    with CaptureQueriesContext(connection) as queries:
        usage_chart(tenant=world.alpha, now=NOW)
    # balances with their included credits, channels, the rules (for channels without
    # a balance), one read of the rollups
    assert len(queries) <= 8, [q["sql"] for q in queries]
    with CaptureQueriesContext(connection) as again:
        usage_chart(tenant=world.alpha, periods_ago=2, now=NOW)
    assert len(again) == len(queries)


def test_another_tenants_usage_is_not_in_the_chart(world: World):
    usage_record_batch(
        tenant=world.beta,
        payload={"events": [event("b1", quantity=9, occurred_at=NOW.isoformat())]},
        now=NOW,
    )
    chart = usage_chart(tenant=world.alpha, now=NOW + timedelta(hours=1))
    assert all(c.total == 0 for c in chart.channels)


@pytest.mark.parametrize(("periods_ago", "granularity"), [(13, "day"), (-1, "day"), (0, "month")])
def test_a_period_or_granularity_out_of_range_is_refused(world: World, periods_ago, granularity):
    with pytest.raises(ValueError):
        usage_chart(tenant=world.alpha, periods_ago=periods_ago, granularity=granularity, now=NOW)
