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


def this_month(tenant, channel, used: int) -> None:
    """The balance of November 2026, the open period at NOW."""
    bounds = month_bounds(2026, 11, tenant.tzinfo)
    period = BillingPeriod.objects.create(
        tenant=tenant, starts_at=bounds.starts_at, ends_at=bounds.ends_at, label="2026-11"
    )
    Balance.objects.create(tenant=tenant, channel=channel, period=period, available=2000,
                           used=used)  # fmt: skip


def recommendation_for(tenant, channel, now=NOW):
    return next(
        r for r in recommendations_compute(tenants=[tenant], now=now) if r.channel_id == channel.pk
    )


def test_percentile_and_rounding_known_answers():
    assert percentile([100, 200, 300, 400, 500], 0.9) == 460
    assert percentile([100, 200, 300, 400, 500], 0.5) == 300
    assert (nice(6137), nice(4200), nice(99), nice(0)) == (6200, 4200, 99, 0)
    assert nice(3000 * 1.1) == 3300  # 3300.0000000000005 as a float


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
    # The trend projects the last month onwards: 6272 × 1.12 = 7025 (the average grown by
    # it, 6299, would fall short of it) → × 1.1 headroom = 7727 → 7800; hard limit 20 % → 1560
    # → 1600
    assert (r.suggested_included, r.suggested_hard_limit) == (7800, 1600)


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
    # 14.5 days into November, another tenant used 1305: 90 a day = 90 % of the capacity.
    this_month(TenantFactory.create(slug="busy", time_zone="UTC"), sms, 1305)
    busy = recommendation_for(tenant, sms)
    assert round(busy.system_load, 2) == 0.90
    assert busy.suggested_included < calm
    assert busy.suggested_included == nice(1000 * 1.1 * 0.9)


def test_the_explanation_names_each_factor_in_sentences(sms):
    sms.capacity_per_day = 10_000
    sms.save()
    cohort(sms, [4200] * 5, industry="retail", size_band="50-249")
    tenant = TenantFactory.create(slug="me", industry="retail", size_band="50-249", time_zone="UTC")
    history(tenant, sms, {8: 5000, 9: 5600, 10: 6272})
    assert recommendation_for(tenant, sms).explanation == (
        "The 5 comparable tenants (retail, 50–249 employees) used a median of 4,200 SMS in "
        "their last full period (mean 4,200, 90th percentile 4,200). "
        "This tenant's last three months averaged 5,624 SMS, rising 12% a month. "
        "The suggestion is the higher of this tenant's projection (7,025 SMS) and the "
        "comparable median (4,200 SMS), plus 10% headroom. "
        "Nothing was sent on SMS this period yet, so its load leaves the suggestion as it is. "
        "Suggested: 7,800 included, hard limit 1,600."
    )


def test_a_suggestion_never_goes_below_what_the_tenants_own_use_projects(sms):
    # Growing 13 % a month, and 1,815 used 19.5 days into November: on course for 2,792.
    # The months before alone (1,249 on average) suggested lowering 2,000 to 1,600.
    sms.capacity_per_day = 500_000
    sms.save()
    cohort(sms, [1000] * 5, industry="finance", size_band="1-9")
    tenant = TenantFactory.create(slug="me", industry="retail", size_band="50-249", time_zone="UTC")
    history(tenant, sms, {8: 1100, 9: 1243, 10: 1405})
    this_month(tenant, sms, 1815)
    r = recommendation_for(tenant, sms, now=datetime(2026, 11, 20, 12, tzinfo=UTC))
    assert r.current_included == 2000
    assert r.suggested_included == 3100  # 2,792 × 1.1 = 3,071 → 3,100
    assert r.explanation == (
        "With fewer than 5 retail tenants to compare with, all 5 other tenants are compared: "
        "they used a median of 1,000 SMS in their last full period (mean 1,000, "
        "90th percentile 1,000). "
        "This tenant's last three months averaged 1,249 SMS, rising 13% a month. "
        "This period it has used 1,815 SMS so far, on course for 2,792 by its end. "
        "The suggestion is the higher of this tenant's projection (2,792 SMS) and the "
        "comparable median (1,000 SMS), plus 10% headroom. "
        "SMS runs at under 1% of its daily capacity, which leaves the suggestion as it is. "
        "Suggested: 3,100 included, hard limit 620."
    )


def test_a_suggestion_below_the_tenants_projection_says_why(sms):
    sms.capacity_per_day = 100
    sms.save()
    tenant = TenantFactory.create(slug="me", industry="retail", size_band="50-249", time_zone="UTC")
    history(tenant, sms, {8: 1000, 9: 1000, 10: 1000})
    # 14.5 days into November, another tenant used 1305: 90 a day = 90 % of the capacity.
    this_month(TenantFactory.create(slug="busy", time_zone="UTC"), sms, 1305)
    r = recommendation_for(tenant, sms)
    assert r.suggested_included == 990 < 1000  # 1,000 × 1.1 × 0.9
    assert (
        "SMS runs at 90% of its daily capacity, so the suggestion is 10% lower. That is below "
        "this tenant's projection of 1,000 SMS: the channel cannot carry more." in r.explanation
    )


def test_a_short_period_counts_what_was_used_not_its_rate(sms):
    # Two days into November, 3,000 used: a burst, not a month's rate of 45,000.
    tenant = TenantFactory.create(slug="me", industry="retail", size_band="50-249", time_zone="UTC")
    this_month(tenant, sms, 3000)
    r = recommendation_for(tenant, sms, now=datetime(2026, 11, 3, tzinfo=UTC))
    assert r.suggested_included == 3300
    assert "This period it has used 3,000 SMS so far." in r.explanation


def test_applying_writes_a_rule_version_once(sms, settings):
    settings.LIMIT_NOTICE_DAYS = 0  # one version in force at once (notice: test_limit_notice)
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
