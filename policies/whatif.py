"""What-if: the effect of a limit change and/or a fee schedule on one tenant or a cohort
(industry × size band) of a channel, before staff apply it (issue 13).

One statement (``policies.whatif_sql``) reads, for every tenant in scope at once, the rule version
in force, its last ended period's and its current period's balance with the credits its
grants give, and the fee schedule in effect for it (the notice rules of
``policies.services.fees.fee_spans``); the cohort defaults and the fee tiers are two small
reads. It is plain SQL that PostgreSQL and SQLite (the demo) both run: window functions,
no vendor's JSON or array functions. Each row's figures — thresholds crossed, units a
ceiling denies, overage and its fee — are then a few operations of arithmetic.

The figures of a period, under the terms in force (``current``) and the proposed ones:

* credits: what the balance's grants give (an expired grant what was drawn from it if it
  expired within the period, since its rest was never available); the proposed terms move
  them by the difference in included credits.
* demand: the units used — in the last ended period, as recorded; in this one, the
  forecast to its end at the rate so far (``metering.selectors.forecast``).
* the ceiling: the credits under ``suspend``; the credits plus ``hard_limit`` when there is
  one; none otherwise. Demand past it is denied; a tenant with any is "denied".
* overage: the units allowed past the credits, priced by the schedule in effect today, or
  by the proposed schedule (a tier mode and tiers, as ``fees.fee_for_units`` prices them).
  Under a ``carry`` rule the close carries overage into the next period's included credits
  as far as they go (``policies.services.close``): the units carried, at most the included
  credits the terms give a period, are not priced; only the rest is.
* thresholds crossed: the rule's warning thresholds the share of credits used reaches.

Not modelled: what carried units take from the next period's credits (which can raise
that period's overage) and a ``restrict`` rule's windowed cap (which only lowers it). A
limit change's worse terms take effect after ``LIMIT_NOTICE_DAYS``, a fee schedule after
``FEE_NOTICE_DAYS``: the preview shows the periods as if the proposal were in force, and
the date each tenant's change would take effect.
"""

from __future__ import annotations

import hashlib
import json
import zoneinfo
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache, cached_property, lru_cache
from typing import Any, NamedTuple

from django.conf import settings
from django.utils.dateparse import parse_datetime

from metering.levels import usage_level
from metering.models import Channel
from metering.selectors import forecast
from metering.services.periods import PeriodBounds, month_bounds
from policies.models import (
    Action,
    CarryOver,
    CohortDefault,
    FeeSchedule,
    FeeTier,
)
from policies.services.fees import fee_for_units
from policies.terms import Terms, validate_terms, worse_terms
from policies.whatif_sql import scope_rows
from tenants.models import Tenant


@dataclass(frozen=True)
class Scope:
    """One tenant, or a cohort: an industry and a size band ("" for any)."""

    channel: Channel
    tenant: Tenant | None = None
    industry: str = ""
    size_band: str = ""

    def describe(self) -> str:
        if self.tenant is not None:
            return f"{self.tenant} · {self.channel.name}"
        industry = Tenant.Industry(self.industry).label if self.industry else "any industry"
        size = Tenant.SizeBand(self.size_band).label if self.size_band else "any size"
        return f"{industry} × {size} · {self.channel.name}"


@dataclass(frozen=True)
class ProposedSchedule:
    """A fee schedule to price overage with: its mode, currency and tiers."""

    mode: str
    currency: str
    tiers: tuple[tuple[int | None, Decimal], ...]

    name = "proposed"

    @cached_property
    def tiers_read(self) -> list[FeeTier]:
        """The tiers as ``fee_for_units`` takes them (made once: a preview prices with them
        twice per tenant), named as on a ``FeeSchedule`` read by the preview."""
        return [FeeTier(up_to=up_to, unit_price=price) for up_to, price in self.tiers]


@dataclass(frozen=True)
class Proposal:
    """Terms to change (as ``limit_rule_set`` takes them; the rest keep their values) and/or
    a fee schedule."""

    changes: dict[str, Any] = field(default_factory=dict)
    schedule: ProposedSchedule | None = None


SUSPEND = str(Action.SUSPEND)
CARRY = str(CarryOver.CARRY)
ZERO = Decimal("0.00")


class Figures(NamedTuple):
    """One period of one tenant under one set of terms and one schedule (a tuple: a
    preview makes four per tenant)."""

    demand: int
    credits: int
    crossed: tuple[int, ...]
    denied_units: int
    overage_units: int
    carried_units: int  # of the overage, carried into the next period (a carry rule)
    overage_amount: Decimal  # of the units not carried
    currency: str
    schedule: str  # the schedule's name, "" when none prices the overage


@dataclass(frozen=True)
class TenantWhatIf:
    tenant_id: int
    name: str
    slug: str
    time_zone: str
    current: Terms
    proposed: Terms
    worse: frozenset[str]
    takes_effect: datetime | None  # when the limit change would; None: it changes nothing
    fee_effective: datetime | None  # when the proposed schedule would price its units
    scheduled: tuple[Terms, datetime] | None  # the last version scheduled after now, from
    last_label: str
    last: tuple[Figures, Figures] | None  # (current, proposed); None: no ended period
    this_label: str
    this: tuple[Figures, Figures] | None

    @property
    def changes_terms(self) -> bool:
        """The proposal moves the terms, and is not what is already scheduled for them."""
        return self.current != self.proposed and not self.already_scheduled

    @property
    def already_scheduled(self) -> bool:
        """The last version scheduled after now (an announced change) has the proposed
        terms: applying again would only announce them twice."""
        return self.scheduled is not None and self.scheduled[0] == self.proposed


@dataclass(frozen=True)
class Summary:
    """A period's figures over the scope, under the terms in force and the proposal."""

    tenants: int
    crossing: list[tuple[int, int, int]]  # threshold, tenants now, tenants proposed
    denied: tuple[int, int]
    overage: tuple[dict[str, Decimal], dict[str, Decimal]]  # by "schedule (currency)"
    overage_tenants: tuple[int, int]


@dataclass(frozen=True)
class WhatIf:
    scope: Scope
    proposal: Proposal
    now: datetime
    rows: list[TenantWhatIf]
    last: Summary
    this: Summary

    @property
    def worse(self) -> list[TenantWhatIf]:
        """The tenants who would be told of worse terms."""
        return [row for row in self.rows if row.worse and row.changes_terms]

    @property
    def changed(self) -> list[TenantWhatIf]:
        return [row for row in self.rows if row.changes_terms or self.proposal.schedule]

    def digest(self) -> str:
        """The tenants in scope and what the proposal does to their terms: the preview an
        apply must match."""
        text = json.dumps([[r.tenant_id, r.proposed.as_fields()] for r in self.rows])
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def _instant(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite
        parsed = parse_datetime(value)
        assert parsed is not None
        value = parsed
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _cohort_terms(channel: Channel) -> dict[tuple[str, str], Terms]:
    return {
        (c.industry, c.size_band): Terms.of(c)
        for c in CohortDefault.objects.filter(channel=channel)
    }


def _default_terms(cohorts: dict[tuple[str, str], Terms], channel: Channel, industry: str,
                   size_band: str) -> Terms:  # fmt: skip
    """The most specific cohort default, else the channel's (``selectors.effective_rule``)."""
    for key in ((industry, size_band), (industry, ""), ("", size_band), ("", "")):
        if key in cohorts:
            return cohorts[key]
    return Terms(included_units=channel.default_included_units)


def _figures(
    *, terms: Terms, demand: int, credits: int, schedule: Any, currency: str,
    priced: dict[tuple[int, int], Decimal],
) -> Figures:  # fmt: skip
    """A period's figures under ``terms``; ``schedule``: a FeeSchedule with its tiers read,
    a ProposedSchedule, or None."""
    if terms.action == SUSPEND:
        allowed = min(demand, max(credits, 0))
    elif terms.hard_limit is not None:
        allowed = min(demand, max(credits + terms.hard_limit, 0))
    else:
        allowed = demand
    overage = max(allowed - max(credits, 0), 0)
    carried = min(overage, terms.included_units) if terms.carry_over == CARRY else 0
    level = usage_level(used=demand, available=credits)
    amount, name = ZERO, ""
    if schedule is not None:
        currency, name = schedule.currency, schedule.name
        # A cohort's tenants share a few schedules and many of them the same overage (a
        # ceiling, nothing past the credits): each is priced once per preview.
        key = (id(schedule), overage - carried)
        if key not in priced:
            priced[key] = fee_for_units(mode=schedule.mode, tiers=schedule.tiers_read,
                                        units=overage - carried, currency=currency)  # fmt: skip
        amount = priced[key]
    return Figures(demand, credits, tuple(t for t in terms.warning_thresholds if level >= t),
                   demand - allowed, overage, carried, amount, currency, name)  # fmt: skip


def _takes_effect(current: Terms, proposed: Terms, worse: frozenset[str], time_zone: str,
                  now: datetime) -> datetime | None:  # fmt: skip
    """When the whole change is in force (``limit_rule_set``'s schedule): now for better
    terms; worse ones after the notice, fewer included credits at the first period start
    at or after it (in the tenant's time zone); None when nothing changes."""
    if proposed == current:
        return None
    if not worse:
        return now
    at = now + timedelta(days=settings.LIMIT_NOTICE_DAYS)
    return _period_start_at_or_after(at, time_zone) if "included_units" in worse else at


@cache
def _period_start_at_or_after(at: datetime, time_zone: str) -> datetime:
    local = at.astimezone(zoneinfo.ZoneInfo(time_zone))
    bounds = month_bounds(local.year, local.month, local.tzinfo)  # type: ignore[arg-type]
    return at if bounds.starts_at == at else bounds.ends_at


def _both(
    sides: Any, demand: int, credits: int, currency: str, priced: dict[tuple[int, int], Decimal]
) -> tuple[Figures, Figures]:
    """A period under the terms in force and the proposed ones: (terms, schedule, the
    difference in included credits) each."""
    (now_terms, now_fees, _), (new_terms, new_fees, delta) = sides
    return (
        _figures(terms=now_terms, demand=demand, credits=credits, schedule=now_fees,
                 currency=currency, priced=priced),
        _figures(terms=new_terms, demand=demand, credits=credits + delta, schedule=new_fees,
                 currency=currency, priced=priced),
    )  # fmt: skip


def _row_terms(values: Any) -> Terms:
    included, thresholds, hard_limit, action, restrict_units, restrict_window, carry = values
    return Terms(
        included_units=included, warning_thresholds=_thresholds(thresholds),
        hard_limit=hard_limit, action=action, restrict_units=restrict_units,
        restrict_window=restrict_window, carry_over=carry,
    )  # fmt: skip


def _units(value: Any, default: int) -> int:
    """A sum of grants (PostgreSQL's SUM of bigints is numeric); a period without a balance
    yet has the included credits opening one would grant."""
    return default if value is None else int(value)


def _thresholds(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):  # jsonb and SQLite's JSON come as text from a raw cursor
        return _thresholds_text(value)
    return tuple(value)


@lru_cache(maxsize=1024)
def _thresholds_text(value: str) -> tuple[int, ...]:
    return tuple(json.loads(value))


def whatif_preview(*, scope: Scope, proposal: Proposal, now: datetime) -> WhatIf:
    """The proposal's effect on every tenant in scope: three queries, whatever its size."""
    rows = scope_rows(
        channel_id=scope.channel.pk, now=now, tenant_id=scope.tenant.pk if scope.tenant else None,
        industry=scope.industry, size_band=scope.size_band,
    )  # fmt: skip
    cohorts = _cohort_terms(scope.channel)
    schedules: dict[int, FeeSchedule] = {
        s.pk: s
        for s in FeeSchedule.objects.filter(pk__in={row[14] for row in rows if row[14]})
        .prefetch_related("tiers")
    }  # fmt: skip
    for read in schedules.values():
        read.tiers_read = list(read.tiers.all())  # type: ignore[attr-defined]
    fee_at = now + timedelta(days=settings.FEE_NOTICE_DAYS)
    valid: set[Terms] = set()  # proposed terms validated (a cohort has few distinct ones)
    derived: dict[Terms, tuple[Terms, frozenset[str]]] = {}  # terms now → proposed, worse
    priced: dict[tuple[int, int], Decimal] = {}  # (schedule, overage units) → fee
    result = []
    for row in rows:
        tenant_id, name, slug, industry, size_band, currency, time_zone, included = row[:8]
        schedule_id = row[14]
        if included is None:
            current = _default_terms(cohorts, scope.channel, industry, size_band)
        else:
            current = _row_terms(row[7:14])
        if current not in derived:
            after = current.with_changes(proposal.changes) if proposal.changes else current
            derived[current] = (after, frozenset(worse_terms(current, after)))
        proposed, worse = derived[current]
        scheduled = None
        if row[25] is not None:
            terms = _row_terms(row[25:32])
            scheduled = (terms, _instant(row[32]))
        if proposed != current and proposed not in valid:
            validate_terms(proposed)
            valid.add(proposed)
        schedule = schedules.get(schedule_id)
        new_schedule: FeeSchedule | ProposedSchedule | None = proposal.schedule or schedule
        delta = proposed.included_units - current.included_units

        sides = ((current, schedule, 0), (proposed, new_schedule, delta))
        last = None
        if row[15] is not None:
            credits = _units(row[17], current.included_units)
            last = _both(sides, int(row[16] or 0), credits, currency, priced)
        this = None
        if row[19] is not None:
            used = int(row[22] or 0)
            credits = _units(row[23], current.included_units)
            bounds = PeriodBounds(row[19], _instant(row[20]), _instant(row[21]))
            projected, _ = forecast(used=used, available=credits, bounds=bounds, now=now)
            demand = projected if projected is not None else used
            this = _both(sides, demand, credits, currency, priced)
        result.append(
            TenantWhatIf(
                tenant_id=tenant_id, name=name, slug=slug, time_zone=time_zone, current=current,
                proposed=proposed,
                worse=worse, takes_effect=scheduled[1]
                if scheduled and scheduled[0] == proposed
                else _takes_effect(current, proposed, worse, time_zone, now),
                fee_effective=fee_at if proposal.schedule else None, scheduled=scheduled,
                last_label=row[15] or "", last=last, this_label=row[19] or "", this=this,
            )
        )  # fmt: skip
    return WhatIf(
        scope=scope, proposal=proposal, now=now, rows=result,
        last=summarize([r.last for r in result if r.last]),
        this=summarize([r.this for r in result if r.this]),
    )  # fmt: skip


def summarize(pairs: list[tuple[Figures, Figures]]) -> Summary:
    """A period's figures over the tenants: each threshold's crossings, denials and the
    overage owed per schedule, under the terms in force and the proposal."""
    crossing: list[Counter[int]] = [Counter(), Counter()]
    overage: list[dict[str, Decimal]] = [defaultdict(Decimal), defaultdict(Decimal)]
    denied, owing = [0, 0], [0, 0]
    for pair in pairs:
        for side, figures in enumerate(pair):
            crossing[side].update(figures.crossed)
            denied[side] += figures.denied_units > 0
            if figures.overage_units > figures.carried_units:
                owing[side] += 1
                key = f"{figures.schedule or 'no schedule'} ({figures.currency})"
                overage[side][key] += figures.overage_amount
    thresholds = sorted(set(crossing[0]) | set(crossing[1]))
    return Summary(
        tenants=len(pairs),
        crossing=[(t, crossing[0][t], crossing[1][t]) for t in thresholds],
        denied=(denied[0], denied[1]),
        overage=(dict(overage[0]), dict(overage[1])),
        overage_tenants=(owing[0], owing[1]),
    )
