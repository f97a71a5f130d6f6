"""The anomaly watch's arithmetic (``policies.anomaly``), without the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from policies.anomaly import Rules, baseline_of, evidence_series, judge, throttle_units

RULES = Rules(factor=3.0, spread_factor=6.0, floor=20, min_rate=100, capacity_share=0.25)


def test_the_baseline_is_the_median_and_one_earlier_spike_does_not_move_it():
    assert baseline_of([200, 210, 190, 5000]).median == 205
    assert baseline_of([200, 210, 190, 5000]).spread == pytest.approx(10 * 1.4826)


def test_no_history_is_a_baseline_of_nothing():
    empty = baseline_of([])
    assert (empty.median, empty.spread, empty.weeks) == (0.0, 0.0, 0)


def test_a_rate_many_times_its_normal_is_a_spike():
    verdict = judge(rate=2000, history=[200, 200, 210, 190], capacity_per_hour=None, rules=RULES)
    assert verdict.spike and verdict.by_ratio and not verdict.by_capacity
    assert verdict.ratio == pytest.approx(2000 / 200)


def test_a_busy_hour_below_the_factor_is_not():
    assert not judge(rate=550, history=[200] * 4, capacity_per_hour=None, rules=RULES).spike


def test_a_tiny_tenant_is_judged_against_the_floor_and_the_minimum():
    # 5 a week usually, 90 now: 18× its median, but under the minimum rate.
    assert not judge(rate=90, history=[5, 4, 6, 5], capacity_per_hour=None, rules=RULES).spike
    # 150 now: above the minimum, 7.5× the floor of 20.
    verdict = judge(rate=150, history=[5, 4, 6, 5], capacity_per_hour=None, rules=RULES)
    assert verdict.spike and verdict.baseline == 20


def test_a_tenant_whose_hours_vary_a_lot_is_judged_by_its_own_variation():
    history = [100, 900, 150, 800]  # median 475, MAD 350
    verdict = judge(rate=1500, history=history, capacity_per_hour=None, rules=RULES)
    assert verdict.rate > RULES.factor * verdict.baseline
    assert not verdict.spike  # within 6 spreads of its median


def test_a_large_share_of_capacity_is_a_spike_even_at_the_usual_rate():
    verdict = judge(rate=1200, history=[1200] * 4, capacity_per_hour=4000, rules=RULES)
    assert verdict.by_capacity and not verdict.by_ratio
    assert verdict.capacity_share == pytest.approx(0.3)


def test_the_capacity_rule_also_needs_the_minimum_rate():
    assert not judge(rate=60, history=[60] * 4, capacity_per_hour=100, rules=RULES).spike


def test_an_automatic_throttle_allows_the_factor_times_normal_and_at_least_the_minimum():
    big = judge(rate=2000, history=[200] * 4, capacity_per_hour=None, rules=RULES)
    small = judge(rate=150, history=[5] * 4, capacity_per_hour=None, rules=RULES)
    assert (throttle_units(big, RULES), throttle_units(small, RULES)) == (600, 100)


def test_the_evidence_series_is_each_hour_beside_the_median_of_the_same_hour_before():
    end = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    hourly = {end - hour: 900, end - 2 * hour: 100}
    for week in range(1, 5):
        hourly[end - hour - timedelta(weeks=week)] = 100 + week  # 101..104 → median 102.5
    series = evidence_series(hourly=hourly, end=end, hours=3, weeks=4)
    assert series == [
        {"at": (end - 3 * hour).isoformat(), "units": 0, "normal": 0.0},
        {"at": (end - 2 * hour).isoformat(), "units": 100, "normal": 0.0},
        {"at": (end - hour).isoformat(), "units": 900, "normal": 102.5},
    ]


def test_a_series_ending_within_an_hour_ends_with_that_partial_hour():
    end = datetime(2026, 11, 20, 12, 20, tzinfo=UTC)
    series = evidence_series(hourly={}, end=end, hours=2, weeks=1)
    assert [point["at"] for point in series] == [
        datetime(2026, 11, 20, 11, tzinfo=UTC).isoformat(),
        datetime(2026, 11, 20, 12, tzinfo=UTC).isoformat(),
    ]
