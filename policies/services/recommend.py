"""Limit recommendations (policy § 4): from the tenant's own history and trend, its use of
the current period, its peer cohort (same industry and size band) and the system's load —
with the reasons in sentences. A suggestion never goes below what the tenant's own use
projects unless the system's load takes it there, and then it says so."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from creditguard.errors import Conflict
from metering.models import Balance, Channel
from metering.selectors import forecast
from metering.services.periods import PeriodBounds
from policies.models import LimitRecommendation
from policies.selectors import effective_rules
from policies.services.rules import limit_rule_set
from tenants.models import Tenant

HISTORY_PERIODS = 3
MIN_COHORT = 5
HEADROOM = 1.10
HIGH_LOAD = 0.80
HARD_LIMIT_SHARE = 0.20
# Before this much of the current period has passed, its rate is too noisy to project
# from (a burst on the first day is not a month's use): only the units used so far count.
CURRENT_PERIOD_MIN_DAYS = 7


def percentile(values: list[int], share: float) -> float:
    """Linear interpolation between closest ranks (inclusive), as spreadsheets do."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    position = (len(ordered) - 1) * share
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def nice(value: float) -> int:
    """Round up to two significant digits (6,137 → 6,200), so suggestions read as chosen."""
    if value <= 0:
        return 0
    magnitude = 10 ** max(int(math.log10(value)) - 1, 0)
    # Rounded first, so that a float's last bit (3000 × 1.1 = 3300.0000000000005) does not
    # round a whole step up.
    return int(math.ceil(round(value / magnitude, 9)) * magnitude)


@dataclass(frozen=True)
class CohortStats:
    label: str
    size: int
    mean: float
    median: float
    p90: float
    # Who they are, as the subject of a sentence: "the 5 comparable tenants (retail, …)".
    described: str


def _cohort(
    tenant: Tenant, channel: Channel, last: dict[tuple[int, int], int], tenants: dict[int, Tenant]
) -> CohortStats | None:
    """Usage of comparable tenants' last full period: same industry and size band; with
    fewer than MIN_COHORT of them, the same industry; then everyone."""
    industry = tenant.get_industry_display().lower()
    size_band = tenant.get_size_band_display()
    levels = [
        (
            f"{industry} tenants of {size_band}",
            lambda t: t.industry == tenant.industry and t.size_band == tenant.size_band,
            lambda n: f"the {_tenants(n, 'comparable')} ({industry}, {size_band})",
        ),
        (
            f"{industry} tenants",
            lambda t: t.industry == tenant.industry,
            lambda n: (
                f"with fewer than {MIN_COHORT} comparable tenants of {size_band}, "
                f"the {_tenants(n, industry)} are compared: they"
            ),
        ),
        (
            "all tenants",
            lambda t: True,
            lambda n: (
                f"with fewer than {MIN_COHORT} {industry} tenants to compare with, "
                f"{'the one other tenant is' if n == 1 else f'all {n} other tenants are'} "
                "compared: they"
            ),
        ),
    ]
    for label, matches, described in levels:
        values = [
            used
            for (tenant_id, channel_id), used in last.items()
            if channel_id == channel.pk and tenant_id != tenant.pk and matches(tenants[tenant_id])
        ]
        if len(values) >= MIN_COHORT or label == "all tenants":
            if not values:
                return None
            return CohortStats(label, len(values), statistics.fmean(values),
                               statistics.median(values), percentile(values, 0.9),
                               described(len(values)))  # fmt: skip
    return None


def _tenants(count: int, adjective: str) -> str:
    return f"{count} {adjective} tenant{'s' if count != 1 else ''}"


@dataclass(frozen=True)
class CurrentUse:
    """The tenant's use of the period in progress."""

    used: int
    bounds: PeriodBounds


def recommendations_compute(
    *, tenants: list[Tenant] | None = None, now: datetime | None = None
) -> list[LimitRecommendation]:
    """Compute a recommendation for each tenant × active channel (all tenants by default)."""
    now = now or timezone.now()
    channels = list(Channel.objects.filter(active=True))
    everyone = {t.pk: t for t in Tenant.objects.exclude(status=Tenant.Status.CLOSED)}
    targets = tenants or list(everyone.values())

    # The last full periods of every tenant × channel, newest first.
    history: dict[tuple[int, int], list[int]] = defaultdict(list)
    for balance in (
        Balance.objects.filter(period__ends_at__lte=now, channel__in=channels)
        .order_by("tenant_id", "channel_id", "-period__starts_at")
        .values("tenant_id", "channel_id", "used")
    ):
        key = (balance["tenant_id"], balance["channel_id"])
        if len(history[key]) < HISTORY_PERIODS:
            history[key].append(balance["used"])
    last = {key: values[0] for key, values in history.items() if key[0] in everyone}

    # System load: this period's use per day so far against each channel's capacity.
    current = Balance.objects.filter(period__starts_at__lte=now, period__ends_at__gt=now)
    this_period = {
        (row["tenant_id"], row["channel_id"]): CurrentUse(
            used=row["used"],
            bounds=PeriodBounds(
                label=row["period__label"],
                starts_at=row["period__starts_at"],
                ends_at=row["period__ends_at"],
            ),
        )
        for row in current.filter(channel__in=channels, used__gt=0).values(
            "tenant_id",
            "channel_id",
            "used",
            "period__label",
            "period__starts_at",
            "period__ends_at",
        )
    }
    loads: dict[int, float | None] = {}
    for channel in channels:
        used = current.filter(channel=channel).aggregate(total=Sum("used"))["total"] or 0
        starts = current.filter(channel=channel).values_list("period__starts_at", flat=True).first()
        days = max((now - starts).total_seconds() / 86400, 1.0) if starts else 1.0
        loads[channel.pk] = (
            (used / days) / channel.capacity_per_day if channel.capacity_per_day else None
        )

    created = []
    for tenant in targets:
        rules = effective_rules(tenant=tenant, channels=channels, at=now)
        for channel in channels:
            own = list(reversed(history.get((tenant.pk, channel.pk), [])))  # oldest first
            cohort = _cohort(tenant, channel, last, everyone)
            load = loads[channel.pk]
            created.append(_recommend(tenant, channel, rules[channel.pk].included_units, own,
                                      this_period.get((tenant.pk, channel.pk)), cohort, load,
                                      now))  # fmt: skip
    LimitRecommendation.objects.bulk_create(created)
    return created


def _recommend(
    tenant: Tenant, channel: Channel, current: int, own: list[int], now_use: CurrentUse | None,
    cohort: CohortStats | None, load: float | None, now: datetime,
) -> LimitRecommendation:  # fmt: skip
    unit = channel.name
    reasons = []
    average = trend = p90 = None
    # What the tenant's own use projects for a period: its trend carried on from its
    # average and from its last full period, and the current period at its rate so far.
    projections: list[float] = []
    if own:
        average = statistics.fmean(own)
        p90 = percentile(own, 0.9)
        if len(own) >= 2 and own[0] > 0:
            trend = (own[-1] / own[0]) ** (1 / (len(own) - 1)) - 1
        projections += [average * (1 + (trend or 0)), own[-1] * (1 + (trend or 0))]
        months = {1: "last month", 2: "last two months", 3: "last three months"}[len(own)]
        reasons.append(
            f"this tenant's {months} averaged {round(average):,} {unit}"
            + (f", {'rising' if trend >= 0 else 'falling'} {abs(trend):.0%} a month"
               if trend is not None else "")
        )  # fmt: skip
    else:
        reasons.append("this tenant has no full period yet")
    if now_use is not None:
        projected, _ = forecast(used=now_use.used, available=0, bounds=now_use.bounds, now=now)
        if (now - now_use.bounds.starts_at).days >= CURRENT_PERIOD_MIN_DAYS and projected:
            projections.append(projected)
            reasons.append(f"this period it has used {now_use.used:,} {unit} so far, on course "
                           f"for {projected:,} by its end")  # fmt: skip
        else:
            projections.append(now_use.used)
            reasons.append(f"this period it has used {now_use.used:,} {unit} so far")
    if cohort:
        reasons.insert(0, f"{cohort.described} used a median of {round(cohort.median):,} {unit} "
                          f"in their last full period (mean {round(cohort.mean):,}, "
                          f"90th percentile {round(cohort.p90):,})")  # fmt: skip
    own_projection = round(max(projections)) if projections else None
    headroom = f"plus {HEADROOM - 1:.0%} headroom"
    if own_projection is not None and cohort:
        basis: float = max(own_projection, cohort.median)
        reasons.append(f"the suggestion is the higher of this tenant's projection "
                       f"({own_projection:,} {unit}) and the comparable median "
                       f"({round(cohort.median):,} {unit}), {headroom}")  # fmt: skip
    elif own_projection is not None:
        basis = own_projection
        reasons.append(f"the suggestion is this tenant's projection ({own_projection:,} "
                       f"{unit}) {headroom}")  # fmt: skip
    elif cohort:
        basis = cohort.median
        reasons.append(f"the suggestion is the comparable median ({round(cohort.median):,} "
                       f"{unit}) {headroom}")  # fmt: skip
    else:
        basis = current
        reasons.append(f"without history or peers, the suggestion is the current {current:,} "
                       f"{unit} {headroom}")  # fmt: skip
    suggested = basis * HEADROOM
    if load is not None and load > HIGH_LOAD:
        # Past 80 % of capacity, every point of load takes a point off the suggestion.
        cut = min(load - HIGH_LOAD, 0.3)
        suggested *= 1 - cut
        reasons.append(f"{unit} runs at {load:.0%} of its daily capacity, so the suggestion is "
                       f"{cut:.0%} lower")  # fmt: skip
    elif load:
        share = "under 1%" if load < 0.01 else f"{load:.0%}"
        reasons.append(f"{unit} runs at {share} of its daily capacity, which leaves the "
                       "suggestion as it is")  # fmt: skip
    elif load is not None:
        reasons.append(f"nothing was sent on {unit} this period yet, so its load leaves the "
                       "suggestion as it is")  # fmt: skip
    included = nice(suggested)
    if own_projection is not None and included < own_projection:
        # Only the load can take it there: headroom and rounding only raise it.
        reasons.append(f"that is below this tenant's projection of {own_projection:,} {unit}: "
                       "the channel cannot carry more")  # fmt: skip
    hard_limit = nice(
        included * (HARD_LIMIT_SHARE if (load or 0) <= HIGH_LOAD else HARD_LIMIT_SHARE / 2)
    )
    explanation = " ".join(
        [sentence[0].upper() + sentence[1:] + "." for sentence in reasons]
        + [f"Suggested: {included:,} included, hard limit {hard_limit:,}."]
    )
    return LimitRecommendation(
        tenant=tenant, channel=channel, computed_at=now, current_included=current,
        suggested_included=included, suggested_hard_limit=hard_limit,
        own_average=round(average) if average is not None else None, own_trend=trend,
        own_p90=round(p90) if p90 is not None else None,
        cohort=cohort.label if cohort else "none", cohort_size=cohort.size if cohort else 0,
        cohort_mean=round(cohort.mean) if cohort else None,
        cohort_median=round(cohort.median) if cohort else None,
        cohort_p90=round(cohort.p90) if cohort else None,
        system_load=load, explanation=explanation,
    )  # fmt: skip


@transaction.atomic
def recommendation_apply(
    *, recommendation: LimitRecommendation, reason: str, actor: User | None,
    now: datetime | None = None,
) -> LimitRecommendation:  # fmt: skip
    """Apply a suggestion: a new limit rule version (audited, notified when worse)."""
    now = now or timezone.now()
    locked = LimitRecommendation.objects.select_for_update().get(pk=recommendation.pk)
    if locked.applied_at is not None:
        raise Conflict("This recommendation was applied already.")
    limit_rule_set(
        tenant=locked.tenant, channel=locked.channel, reason=reason, actor=actor,
        included_units=locked.suggested_included, hard_limit=locked.suggested_hard_limit, now=now,
    )  # fmt: skip
    locked.applied_at, locked.applied_by = now, actor
    locked.save(update_fields=["applied_at", "applied_by"])
    return locked
