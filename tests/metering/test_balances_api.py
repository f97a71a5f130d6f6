"""GET /api/v1/balances and GET /api/v1/usage: figures, zero-filling and pinned query counts."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metering.models import Channel, Grant
from metering.selectors import forecast
from metering.services.ingest import usage_record_batch
from metering.services.ledger import grant_create, grants_expire_due
from metering.services.periods import period_bounds, period_get_or_open
from policies.models import CohortDefault
from tenants.models import Tenant
from tests.conftest import NOW, Api, World, event, issue
from tests.factories import TenantFactory

pytestmark = pytest.mark.usefixtures("frozen_clock")


def by_channel(response) -> dict:
    return {row["channel"]: row for row in response.json()["channels"]}


def test_balances_report_each_active_channel_with_its_figures(world: World):
    world.alice_api.ingest([event("s1", channel="sms", quantity=1700)])  # of 2000 included
    response = world.alice_api.get("/api/v1/balances")
    assert response.status_code == 200
    body = response.json()
    assert body["period"]["label"] == "2026-11"
    assert body["period"]["starts_at"] == "2026-11-01T00:00:00+01:00"  # Europe/Berlin
    rows = by_channel(response)
    assert set(rows) == {"email", "sms", "call"}
    sms = rows["sms"]
    assert (sms["included"], sms["used"], sms["remaining"], sms["overage_units"]) == (
        2000,
        1700,
        300,
        0,
    )
    assert sms["status"] == "near_limit"
    assert sms["thresholds_crossed"] == [50, 80]
    assert rows["email"]["used"] == 0 and rows["email"]["status"] == "ok"


def test_balance_over_limit_reports_overage(world: World):
    world.alice_api.ingest([event("c1", channel="call", quantity=650)])
    call = by_channel(world.alice_api.get("/api/v1/balances"))["call"]
    assert (call["overage_units"], call["remaining"], call["status"]) == (150, 0, "over_limit")
    assert call["thresholds_crossed"] == [50, 80, 90, 100]


def test_balances_count_promotional_and_purchased_grants(world: World):
    period = period_get_or_open(
        tenant=world.alpha, bounds=period_bounds(tenant=world.alpha, at=timezone.now())
    )
    sms = Channel.objects.get(code="sms")
    grant_create(
        tenant=world.alpha, channel=sms, period=period, kind=Grant.Kind.PROMOTIONAL, units=300
    )
    grant_create(
        tenant=world.alpha, channel=sms, period=period, kind=Grant.Kind.PURCHASED, units=500
    )
    row = by_channel(world.alice_api.get("/api/v1/balances"))["sms"]
    assert (row["included"], row["promotional"], row["topped_up"], row["available"]) == (
        2000,
        300,
        500,
        2800,
    )


def test_forecast_projects_the_period_rate(world: World):
    # 19 days and 13 hours into a 30-day November (Berlin): 1000 used → ~1533 by the end.
    world.alice_api.ingest([event("f1", channel="sms", quantity=1000)])
    forecast = by_channel(world.alice_api.get("/api/v1/balances"))["sms"]["forecast"]
    elapsed = (
        timezone.now() - period_bounds(tenant=world.alpha, at=timezone.now()).starts_at
    ).total_seconds()
    assert forecast["projected_used"] == round(1000 / elapsed * 30 * 86400)
    assert forecast["limit_reached_at"] is None


def test_forecast_names_the_day_the_limit_is_reached(world: World):
    world.alice_api.ingest([event("f2", channel="sms", quantity=1800)])
    forecast = by_channel(world.alice_api.get("/api/v1/balances"))["sms"]["forecast"]
    assert forecast["projected_used"] > 2000
    assert forecast["limit_reached_at"].startswith("2026-11-2")


def history(world: World, months: int) -> None:
    start = timezone.now() - timedelta(days=30 * months + 1)
    day = start
    while day < timezone.now() - timedelta(hours=1):
        events = [
            event(f"h-{day:%Y%m%d}-{c}", channel=c, quantity=3, occurred_at=day.isoformat())
            for c in ("sms", "email", "call")
        ]
        usage_record_batch(
            tenant=world.alpha, payload={"events": events}, now=day + timedelta(minutes=1)
        )
        day += timedelta(days=1)


@pytest.mark.parametrize("months", [0, 1, 4])
def test_balances_take_a_fixed_number_of_queries_whatever_the_history(world: World, months):
    history(world, months)
    world.alice_api.get("/api/v1/balances")  # the key's last_used_at is now fresh
    with CaptureQueriesContext(connection) as queries:
        assert world.alice_api.get("/api/v1/balances").status_code == 200
    # key + tenant, period, balances, grant totals, channels, rules in force, the
    # period's overage charges (with their schedule), its top-ups per currency
    assert len(queries) == 8, [q["sql"] for q in queries]


@pytest.mark.parametrize("months", [0, 1, 4])
def test_usage_takes_a_fixed_number_of_queries_whatever_the_history(world: World, months):
    history(world, months)
    world.alice_api.get("/api/v1/usage")
    with CaptureQueriesContext(connection) as queries:
        assert world.alice_api.get("/api/v1/usage", {"granularity": "day"}).status_code == 200
    # key + tenant, channels, one aggregate
    assert len(queries) == 3, [q["sql"] for q in queries]


def test_usage_series_is_zero_filled_in_tenant_days(world: World):
    world.alice_api.ingest(
        [
            event(
                "u1", channel="sms", quantity=4, occurred_at="2026-11-18T23:30:00+00:00"
            ),  # 19th in Berlin
            event("u2", channel="sms", quantity=6, occurred_at="2026-11-19T10:00:00+00:00"),
            event("u3", channel="email", quantity=2, occurred_at="2026-11-17T10:00:00+00:00"),
        ]
    )
    response = world.alice_api.get(
        "/api/v1/usage",
        {"channel": "sms", "from": "2026-11-17T00:00:00+01:00", "to": "2026-11-20T00:00:00+01:00"},
    )
    assert response.status_code == 200, response.content
    series = response.json()["series"]
    assert [s["channel"] for s in series] == ["sms"]
    assert series[0]["points"] == [
        {"start": "2026-11-17T00:00:00+01:00", "quantity": 0},
        {"start": "2026-11-18T00:00:00+01:00", "quantity": 0},
        {"start": "2026-11-19T00:00:00+01:00", "quantity": 10},
    ]
    assert series[0]["total"] == 10


def test_usage_by_hour_and_month(world: World):
    world.alice_api.ingest(
        [event("m1", channel="call", quantity=5, occurred_at="2026-11-20T09:15:00+00:00")]
    )
    hourly = world.alice_api.get(
        "/api/v1/usage",
        {
            "channel": "call",
            "granularity": "hour",
            "from": "2026-11-20T09:00:00Z",
            "to": "2026-11-20T12:00:00Z",
        },
    ).json()["series"][0]
    assert [p["quantity"] for p in hourly["points"]] == [5, 0, 0]
    monthly = world.alice_api.get(
        "/api/v1/usage",
        {"channel": "call", "granularity": "month", "from": "2026-09-01T00:00:00+02:00"},
    ).json()["series"][0]
    assert [p["start"][:7] for p in monthly["points"]] == ["2026-09", "2026-10", "2026-11"]
    assert [p["quantity"] for p in monthly["points"]] == [0, 0, 5]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"granularity": "minute"}, "granularity"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-11-19T00:00:00"}, "from"),
        ({"from": "2026-11-19T00:00:00Z", "to": "2026-11-18T00:00:00Z"}, "from"),
        ({"channel": "fax"}, "channel"),
        ({"granularity": "hour", "from": "2020-01-01T00:00:00Z"}, "granularity"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_usage_bad_parameters_are_400_naming_them(world: World, params, field):
    response = world.alice_api.get("/api/v1/usage", params)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]


def test_an_expired_promotional_grant_leaves_the_balance_even_without_usage(world: World):
    period = period_get_or_open(
        tenant=world.alpha, bounds=period_bounds(tenant=world.alpha, at=timezone.now())
    )
    sms = Channel.objects.get(code="sms")
    grant_create(
        tenant=world.alpha,
        channel=sms,
        period=period,
        kind=Grant.Kind.PROMOTIONAL,
        units=300,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    # The promotion expires first, so it is drawn first: 100 of its 300 units.
    world.alice_api.ingest([event("p", channel="sms", quantity=100)])
    assert by_channel(world.alice_api.get("/api/v1/balances"))["sms"]["available"] == 2300
    with time_machine.travel(timezone.now() + timedelta(hours=2), tick=False):
        assert grants_expire_due() == 1
        assert grants_expire_due() == 0
    row = by_channel(world.alice_api.get("/api/v1/balances"))["sms"]
    assert (row["available"], row["used"], row["remaining"]) == (2100, 100, 2000)


def test_promotional_counts_only_what_was_drawn_from_an_expired_grant(world: World):
    # 140 promotional units expiring in an hour; 90 of them are used, the other 50 expire.
    period = period_get_or_open(
        tenant=world.alpha, bounds=period_bounds(tenant=world.alpha, at=timezone.now())
    )
    sms = Channel.objects.get(code="sms")
    grant_create(
        tenant=world.alpha,
        channel=sms,
        period=period,
        kind=Grant.Kind.PROMOTIONAL,
        units=140,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    world.alice_api.ingest([event("promo", channel="sms", quantity=90)])
    with time_machine.travel(timezone.now() + timedelta(hours=2), tick=False):
        assert grants_expire_due() == 1
        row = by_channel(world.alice_api.get("/api/v1/balances"))["sms"]
    assert (row["included"], row["promotional"], row["topped_up"], row["available"]) == (
        2000,
        90,
        0,
        2090,
    )


def test_forecast_names_when_the_rate_reaches_the_hard_ceiling(world: World):
    # 2000 included and 520 more allowed: the ceiling is 2520. 19.5 days into November,
    # 2100 used (already past the credits) projects to about 3224.
    CohortDefault.objects.create(channel=Channel.objects.get(code="sms"), included_units=2000,
                                 hard_limit=520)  # fmt: skip
    tenant = TenantFactory.create(slug="ceiling", time_zone="Europe/Berlin")
    api = Api(issue(tenant).raw_key)
    api.ingest([event("over", channel="sms", quantity=2100)])
    row = by_channel(api.get("/api/v1/balances"))["sms"]
    bounds = period_bounds(tenant=tenant, at=timezone.now())
    rate = 2100 / (timezone.now() - bounds.starts_at).total_seconds()
    assert row["forecast"]["projected_used"] > 2520
    expected = bounds.starts_at + timedelta(seconds=2520 / rate)
    assert datetime.fromisoformat(row["forecast"]["limit_reached_at"]) == expected


def test_forecast_names_the_credits_before_the_ceiling():
    bounds = period_bounds(tenant=Tenant(time_zone="UTC"), at=NOW)
    elapsed = (NOW - bounds.starts_at).total_seconds()
    projected, reached_at = forecast(
        used=1500, available=2000, hard_limit=520, bounds=bounds, now=NOW
    )
    assert projected == round(1500 / elapsed * (bounds.ends_at - bounds.starts_at).total_seconds())
    assert reached_at == bounds.starts_at + timedelta(seconds=2000 / (1500 / elapsed))


def test_forecast_without_a_ceiling_names_nothing_past_the_credits():
    bounds = period_bounds(tenant=Tenant(time_zone="UTC"), at=NOW)
    assert forecast(used=2100, available=2000, hard_limit=None, bounds=bounds, now=NOW)[1] is None
