"""The anomaly watch's arithmetic (policy § 2: no single customer may degrade the service),
pure functions without the database: what is a tenant's normal rate on a channel, is the
rate now a spike, and the evidence chart's series.

The rate is the units of the trailing hour: the last four whole quarter hours before the
run. The normal is the median of the same hour of the week (the same four quarter hours)
in each of the last ``weeks`` weeks, so daily and weekly seasonality are in it, and one
earlier spike does not move it; the spread is their median absolute deviation (MAD). A
rate is a spike when it is above an absolute minimum and either

* more than ``factor`` × the normal (the normal no lower than ``floor``, so a tiny
  tenant's noise never alarms) and above the normal by more than ``spread_factor`` × its
  spread (a tenant whose hours vary a lot is judged by its own variation); or
* at least ``capacity_share`` of what the channel carries in an hour.

``policies.services.anomaly`` reads the sums from the usage rollups in one statement and
judges them here; ``tests/policies/test_anomaly_false_alarms.py`` measures these rules on
synthetic traffic (docs/ANOMALY.md gives the figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median

# The scale that makes the MAD of normal data estimate its standard deviation.
MAD_SCALE = 1.4826
WEEK = timedelta(days=7)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Rules:
    """The thresholds of a judgement (settings ``ANOMALY_*``; docs/ANOMALY.md)."""

    factor: float = 3.0
    spread_factor: float = 6.0
    floor: int = 20
    min_rate: int = 100
    capacity_share: float = 0.25


@dataclass(frozen=True)
class Baseline:
    """A tenant × channel's normal units per hour at this hour of the week."""

    median: float
    spread: float  # MAD × MAD_SCALE
    weeks: int


def baseline_of(history: Sequence[int]) -> Baseline:
    """The median and scaled MAD of the same hour in earlier weeks (a week without usage
    counts as 0: a tenant that was quiet then is quiet normally)."""
    if not history:
        return Baseline(median=0.0, spread=0.0, weeks=0)
    middle = float(median(history))
    spread = float(median(abs(units - middle) for units in history)) * MAD_SCALE
    return Baseline(median=middle, spread=spread, weeks=len(history))


@dataclass(frozen=True)
class Verdict:
    """A judgement of one tenant × channel's trailing hour."""

    rate: int
    baseline: float  # the normal the rate was compared with (median, floored)
    spread: float
    ratio: float  # rate / baseline
    capacity_share: float | None  # rate / the channel's units per hour; None: unknown
    by_ratio: bool
    by_capacity: bool

    @property
    def spike(self) -> bool:
        return self.by_ratio or self.by_capacity


def judge(
    *, rate: int, history: Sequence[int], capacity_per_hour: float | None, rules: Rules
) -> Verdict:
    """Judge ``rate`` (units in the trailing hour) against ``history`` (the same hour's
    units in each earlier week) and the channel's capacity per hour (None or 0: unknown)."""
    base = baseline_of(history)
    normal = max(base.median, float(rules.floor), 1.0)
    ratio = rate / normal
    share = rate / capacity_per_hour if capacity_per_hour else None
    high_enough = rate >= rules.min_rate
    by_ratio = (
        high_enough
        and rate > rules.factor * normal
        and rate > base.median + rules.spread_factor * base.spread
    )
    by_capacity = high_enough and share is not None and share >= rules.capacity_share
    return Verdict(
        rate=rate,
        baseline=normal,
        spread=base.spread,
        ratio=ratio,
        capacity_share=share,
        by_ratio=by_ratio,
        by_capacity=by_capacity,
    )


def throttle_units(verdict: Verdict, rules: Rules) -> int:
    """The hourly cap of an automatic throttle: ``factor`` × the normal (what the tenant
    may send without being a spike), at least the absolute minimum."""
    return max(int(rules.factor * verdict.baseline), rules.min_rate)


def evidence_series(
    *, hourly: Mapping[datetime, int], end: datetime, hours: int, weeks: int
) -> list[dict[str, object]]:
    """The chart of an alert: for each of the ``hours`` whole hours before ``end`` (a whole
    hour or not: the hour holding ``end`` is the last, partial), the units sent and the
    normal (median of the same hour in the ``weeks`` weeks before). ``hourly`` maps hour
    starts (UTC) to units; missing hours are 0."""
    last = end.replace(minute=0, second=0, microsecond=0)
    if last == end:
        last -= HOUR
    series: list[dict[str, object]] = []
    for back in range(hours - 1, -1, -1):
        at = last - back * HOUR
        earlier = [hourly.get(at - week * WEEK, 0) for week in range(1, weeks + 1)]
        series.append(
            {
                "at": at.isoformat(),
                "units": hourly.get(at, 0),
                "normal": round(float(median(earlier)), 1) if earlier else 0.0,
            }
        )
    return series
