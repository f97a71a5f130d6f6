"""Billing periods: calendar months in the tenant's time zone, grace window, closing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from metering.models import BillingPeriod
from metering.services.periods import (
    month_bounds,
    period_accepts_events,
    period_bounds,
    period_get_or_open,
    period_mark_closed,
)
from tests.factories import TenantFactory


@pytest.mark.parametrize(
    ("time_zone", "at", "label", "starts_at"),
    [
        (
            "Europe/Berlin",
            datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
            "2026-12",
            datetime(2026, 11, 30, 23, 0, tzinfo=UTC),
        ),
        (
            "Europe/Berlin",
            datetime(2026, 11, 30, 22, 30, tzinfo=UTC),
            "2026-11",
            datetime(2026, 10, 31, 23, 0, tzinfo=UTC),
        ),
        (
            "America/Los_Angeles",
            datetime(2026, 12, 1, 5, 0, tzinfo=UTC),
            "2026-11",
            datetime(2026, 11, 1, 7, 0, tzinfo=UTC),
        ),
        (
            "Pacific/Auckland",
            datetime(2026, 12, 31, 12, 0, tzinfo=UTC),
            "2027-01",
            datetime(2026, 12, 31, 11, 0, tzinfo=UTC),
        ),
    ],
)
def test_period_is_the_calendar_month_in_the_tenant_time_zone(db, time_zone, at, label, starts_at):
    tenant = TenantFactory.create(time_zone=time_zone)
    bounds = period_bounds(tenant=tenant, at=at)
    assert (bounds.label, bounds.starts_at) == (label, starts_at)
    assert bounds.starts_at <= at < bounds.ends_at


def test_period_across_daylight_saving_change_has_its_true_length(db):
    tenant = TenantFactory.create(time_zone="Europe/Berlin")
    october = month_bounds(2026, 10, tenant.tzinfo)
    assert october.ends_at - october.starts_at == timedelta(days=31, hours=1)


def test_grace_window_after_period_end(db, settings):
    settings.PERIOD_GRACE_SECONDS = 3600
    tenant = TenantFactory.create(time_zone="UTC")
    bounds = month_bounds(2026, 10, tenant.tzinfo)
    assert period_accepts_events(bounds=bounds, now=bounds.ends_at + timedelta(minutes=59))
    assert not period_accepts_events(bounds=bounds, now=bounds.ends_at + timedelta(minutes=60))


def test_period_mark_closed_waits_for_the_grace_window_and_closes_once(db):
    tenant = TenantFactory.create(time_zone="UTC")
    period = period_get_or_open(tenant=tenant, bounds=month_bounds(2026, 10, tenant.tzinfo))
    assert not period_mark_closed(period=period, now=period.ends_at + timedelta(minutes=30))
    assert period.status == BillingPeriod.Status.OPEN
    assert period_mark_closed(period=period, now=period.ends_at + timedelta(hours=2))
    assert period.status == BillingPeriod.Status.CLOSED
    closed_at = period.closed_at
    assert not period_mark_closed(period=period, now=period.ends_at + timedelta(hours=3))
    assert period.closed_at == closed_at


def test_period_get_or_open_returns_the_same_row(db):
    tenant = TenantFactory.create()
    bounds = month_bounds(2026, 11, tenant.tzinfo)
    assert (
        period_get_or_open(tenant=tenant, bounds=bounds).pk
        == period_get_or_open(tenant=tenant, bounds=bounds).pk
    )
    assert BillingPeriod.objects.filter(tenant=tenant).count() == 1
