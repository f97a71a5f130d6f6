"""Limit recommendations: known answers for cohorts, trend, load, and the explanation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from creditguard.errors import Conflict
from metering.models import Balance, BillingPeriod, Channel
from metering.services.periods import month_bounds
from policies.models import LimitRule
from policies.services.recommend import (
    nice,
    percentile,
    recommendation_apply,
    recommendations_compute,
)
from tests.factories import TenantFactory

NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)


def history(tenant, channel, used_by_month: dict[int, int]) -> None:
    """Balances of past months of 2026 (month → used)."""
    for month, used in used_by_month.items():
        bounds = month_bounds(2026, month, tenant.tzinfo)
        period, _ = BillingPeriod.objects.get_or_create(
            tenant=tenant,
            starts_at=bounds.starts_at,
            defaults={"ends_at": bounds.ends_at, "label": bounds.label, "status": "closed"},
        )
        Balance.objects.create(
            tenant=tenant, channel=channel, period=period, available=10_000, used=used
        )


def cohort(channel, usages: list[int], **profile) -> None:
    for n, used in enumerate(usages):
        tenant = TenantFactory.create(
            slug=f"peer-{profile.get('industry', 'x')}-{profile.get('size_band', 'x').replace('+', 'p')}-{n}",
            time_zone="UTC",
            **profile,
        )
        history(tenant, channel, {10: used})


def recommendation_for(tenant, channel):
    return next(
        r for r in recommendations_compute(tenants=[tenant], now=NOW) if r.channel_id == channel.pk
    )


def test_percentile_and_rounding_known_answers():
    assert percentile([100, 200, 300, 400, 500], 0.9) == 460
    assert percentile([100, 200, 300, 400, 500], 0.5) == 300
    assert (nice(6137), nice(4200), nice(99), nice(0)) == (6200, 4200, 99, 0)


@pytest.fixture
def sms(db):
    channel = Channel.objects.get(code="sms")
    channel.capacity_per_day = None  # no load factor unless a test sets one
    channel.save()
    return channel


def test_cohort_median_and_p90_and_own_trend(sms):
    cohort(sms, [100, 200, 300, 400, 500], industry="retail", size_band="50-249")
    tenant = TenantFactory.create(slug="me", industry="retail", size_band="50-249", time_zone="UTC")
    history(tenant, sms, {8: 5000, 9: 5600, 10: 6272})  # +12 % a month
    r = recommendation_for(tenant, sms)
    assert (r.cohort_size, r.cohort_median, r.cohort_p90, r.cohort_mean) == (5, 300, 460, 300)
    assert r.own_average == 5624 and round(r.own_trend, 2) == 0.12
    # projection 5624 × 1.12 = 6299 → × 1.1 headroom = 6929 → 7000; hard limit 20 % → 1400
    assert (r.suggested_included, r.suggested_hard_limit) == (7000, 1400)


def test_small_cohort_falls_back_to_a_broader_one(sms):
    cohort(sms, [100, 200], industry="retail", size_band="50-249")
    cohort(sms, [1000, 1000, 1000], industry="retail", size_band="1-9")
    tenant = TenantFactory.create(slug="me", industry="retail", size_band="50-249", time_zone="UTC")
    r = recommendation_for(tenant, sms)
    assert (r.cohort, r.cohort_size, r.cohort_median) == ("retail tenants", 5, 1000)
    assert r.own_average is None and r.suggested_included == 1100  # cohort median × 1.1


def test_high_system_load_lowers_the_suggestion(sms):
    cohort(sms, [1000] * 5, industry="retail", size_band="50-249")
    tenant = TenantFactory.create(slug="me", industry="retail", size_band="50-249", time_zone="UTC")
    calm = recommendation_for(tenant, sms).suggested_included
    sms.capacity_per_day = 100
    sms.save()
    bounds = month_bounds(2026, 11, tenant.tzinfo)
    period = BillingPeriod.objects.create(
        tenant=tenant, starts_at=bounds.starts_at, ends_at=bounds.ends_at, label="2026-11"
    )
    # 14.5 days into November, 1305 used: 90 a day = 90 % of the capacity.
    Balance.objects.create(tenant=tenant, channel=sms, period=period, available=1000, used=1305)
    busy = recommendation_for(tenant, sms)
    assert round(busy.system_load, 2) == 0.90
    assert busy.suggested_included < calm
    assert busy.suggested_included == nice(1000 * 1.1 * 0.9)


def test_the_explanation_names_each_factor(sms):
    sms.capacity_per_day = 10_000
    sms.save()
    cohort(sms, [4200] * 5, industry="retail", size_band="50-249")
    tenant = TenantFactory.create(slug="me", industry="retail", size_band="50-249", time_zone="UTC")
    history(tenant, sms, {8: 5000, 9: 5600, 10: 6272})
    text = recommendation_for(tenant, sms).explanation
    assert "Comparable retail tenants of 50–249 employees (5) use a median of 4,200 SMS" in text
    assert "this tenant's last three months averaged 5,624 SMS, rising 12% a month" in text
    assert "SMS capacity is at" in text


def test_applying_writes_a_rule_version_once(sms):
    cohort(sms, [1000] * 5, industry="retail", size_band="50-249")
    tenant = TenantFactory.create(slug="me", industry="retail", size_band="50-249", time_zone="UTC")
    r = recommendation_for(tenant, sms)
    recommendation_apply(recommendation=r, reason="Nightly suggestion", actor=None)
    rule = LimitRule.objects.filter(tenant=tenant, channel=sms).order_by("-version").first()
    assert (rule.version, rule.included_units, rule.hard_limit, rule.reason) == (
        2,
        r.suggested_included,
        r.suggested_hard_limit,
        "Nightly suggestion",
    )
    with pytest.raises(Conflict):
        recommendation_apply(recommendation=r, reason="again", actor=None)
