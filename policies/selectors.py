"""Reads of the rules in force: the effective limit rule, the restrictions in force,
the fee schedule that applies; and a tenant's limit requests with what staff weigh."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, Sum

from creditguard.money import round_money
from metering.models import Balance, BillingPeriod, Channel
from metering.selectors import balances_by_period
from policies.models import (
    CohortDefault,
    LimitRecommendation,
    LimitRequest,
    LimitRule,
    OverageCharge,
    Restriction,
    RuleTerms,
    TopUp,
)
from policies.terms import Terms
from tenants.models import Tenant


@dataclass(frozen=True)
class EffectiveRule(Terms):
    """The terms in force for a tenant × channel, and where they come from: the tenant's
    rule version, its cohort's default, or the channel's default."""

    source: str = "channel default"
    rule: LimitRule | None = field(default=None, compare=False)

    @property
    def version(self) -> int | None:
        return self.rule.version if self.rule else None


def rule_terms(terms: RuleTerms, *, source: str, rule: LimitRule | None = None) -> EffectiveRule:
    """The rule in force made of a rule version's or a cohort default's terms."""
    return EffectiveRule(**vars(Terms.of(terms)), source=source, rule=rule)


def cohort_default_for(*, tenant: Tenant, channel: Channel) -> CohortDefault | None:
    """The most specific cohort default: industry and size band, then industry,
    then size band, then any."""
    candidates = CohortDefault.objects.filter(
        Q(industry=tenant.industry) | Q(industry=""),
        Q(size_band=tenant.size_band) | Q(size_band=""),
        channel=channel,
    )
    return min(
        candidates,
        key=lambda c: (c.industry == "", c.size_band == ""),
        default=None,
    )


def effective_rule(*, tenant: Tenant, channel: Channel, at: datetime) -> EffectiveRule:
    """The tenant's latest rule version in force at ``at``; without one, its
    cohort's default; without that, the channel's default. One query when the
    tenant has a rule."""
    rule = (
        LimitRule.objects.for_tenant(tenant)
        .filter(channel=channel, effective_from__lte=at)
        .order_by("-version")
        .first()
    )
    if rule is not None:
        return rule_terms(rule, source=f"rule v{rule.version}", rule=rule)
    cohort = cohort_default_for(tenant=tenant, channel=channel)
    if cohort is not None:
        return rule_terms(
            cohort, source=f"cohort default {cohort.industry or 'any'}/{cohort.size_band or 'any'}"
        )
    return EffectiveRule(included_units=channel.default_included_units)


def effective_rules(
    *, tenant: Tenant, channels: list[Channel], at: datetime
) -> dict[int, EffectiveRule]:
    """Effective rules of several channels in two queries (rules, then cohort defaults)."""
    latest: dict[int, LimitRule] = {}
    for rule in (
        LimitRule.objects.for_tenant(tenant)
        .filter(channel__in=channels, effective_from__lte=at)
        .order_by("channel_id", "-version")
    ):
        latest.setdefault(rule.channel_id, rule)
    result: dict[int, EffectiveRule] = {}
    missing = [c for c in channels if c.pk not in latest]
    cohorts: dict[int, CohortDefault] = {}
    if missing:
        for cohort in CohortDefault.objects.filter(
            Q(industry=tenant.industry) | Q(industry=""),
            Q(size_band=tenant.size_band) | Q(size_band=""),
            channel__in=missing,
        ):
            best = cohorts.get(cohort.channel_id)
            rank = (cohort.industry == "", cohort.size_band == "")
            if best is None or rank < (best.industry == "", best.size_band == ""):
                cohorts[cohort.channel_id] = cohort
    for channel in channels:
        if channel.pk in latest:
            rule = latest[channel.pk]
            result[channel.pk] = rule_terms(rule, source=f"rule v{rule.version}", rule=rule)
        elif channel.pk in cohorts:
            cohort = cohorts[channel.pk]
            result[channel.pk] = rule_terms(
                cohort,
                source=f"cohort default {cohort.industry or 'any'}/{cohort.size_band or 'any'}",
            )
        else:
            result[channel.pk] = EffectiveRule(included_units=channel.default_included_units)
    return result


def limit_rules_scheduled(*, tenant: Tenant, at: datetime) -> list[LimitRule]:
    """The tenant's rule versions that take effect after ``at`` (announced worse terms,
    future-dated changes), by date, with their channel."""
    return list(
        LimitRule.objects.for_tenant(tenant)
        .filter(effective_from__gt=at)
        .select_related("channel")
        .order_by("effective_from", "channel__code", "version")
    )


def restrictions_in_force(
    *, tenant: Tenant, at: datetime, channel: Channel | None = None
) -> list[Restriction]:
    """Unlifted restrictions whose window contains ``at``: of the whole tenant, and
    of ``channel`` when given (else of every channel)."""
    query = Restriction.objects.for_tenant(tenant).filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=at), lifted_at__isnull=True, starts_at__lte=at
    )
    if channel is not None:
        query = query.filter(Q(channel__isnull=True) | Q(channel=channel))
    return list(query.order_by("pk"))


def restriction_states(*, tenant: Tenant, at: datetime) -> dict[int | None, str]:
    """Staff restrictions in force at ``at``: "suspended" or "restricted" by channel id
    (None: the whole tenant), a suspension winning over a restriction. No query for an
    active tenant (a restriction in force always sets the tenant's status)."""
    states: dict[int | None, str] = {}
    if tenant.status == Tenant.Status.ACTIVE:
        return states
    for restriction in restrictions_in_force(tenant=tenant, at=at):
        state = "suspended" if restriction.kind == Restriction.Kind.SUSPEND else "restricted"
        if states.get(restriction.channel_id) != "suspended":
            states[restriction.channel_id] = state
    return states


# How many of a tenant's limit requests its portal page lists (newest first).
LIMIT_REQUESTS_LISTED = 50
# How many periods of a channel's usage staff see beside a limit request.
LIMIT_REQUEST_HISTORY_PERIODS = 6


def limit_requests_of(*, tenant: Tenant) -> list[LimitRequest]:
    """The tenant's latest limit requests with their channel, newest first (one query)."""
    return list(
        LimitRequest.objects.for_tenant(tenant)
        .select_related("channel")
        .order_by("-requested_at", "-pk")[:LIMIT_REQUESTS_LISTED]
    )


@dataclass(frozen=True)
class LimitRequestReview:
    """What staff weigh beside a limit request: the terms in force and any scheduled, the
    channel's usage of the last periods, the latest recommendation (its own history and
    trend, the peer cohort, the system's load) and the tenant's earlier requests."""

    request: LimitRequest
    rule: EffectiveRule
    scheduled: list[LimitRule]
    history: list[Balance]
    recommendation: LimitRecommendation | None
    earlier: list[LimitRequest]


def limit_request_review(*, limit_request: LimitRequest, at: datetime) -> LimitRequestReview:
    """A limit request beside what decides it, read as the recommendation and the balances
    record it (nothing recomputed here). A fixed number of queries."""
    tenant, channel = limit_request.tenant, limit_request.channel
    return LimitRequestReview(
        request=limit_request,
        rule=effective_rule(tenant=tenant, channel=channel, at=at),
        scheduled=[
            r for r in limit_rules_scheduled(tenant=tenant, at=at) if r.channel_id == channel.pk
        ],
        history=balances_by_period(
            tenant=tenant, channel=channel, periods=LIMIT_REQUEST_HISTORY_PERIODS
        ),
        recommendation=LimitRecommendation.objects.for_tenant(tenant)
        .filter(channel=channel)
        .order_by("-computed_at")
        .first(),
        earlier=list(
            LimitRequest.objects.for_tenant(tenant)
            .filter(channel=channel)
            .exclude(pk=limit_request.pk)
            .select_related("decided_by")
            .order_by("-requested_at")[:10]
        ),
    )


@dataclass(frozen=True)
class CurrencyOwed:
    """What a tenant owes in one currency: overage charges and top-ups bought."""

    currency: str
    overage: Decimal
    topups: Decimal

    @property
    def total(self) -> Decimal:
        return self.overage + self.topups


@dataclass(frozen=True)
class PeriodOwed:
    charges: dict[int, OverageCharge]  # by channel id, with its schedule
    by_currency: list[CurrencyOwed]  # one per currency, in code order; never summed across


def charge_owed(charge: OverageCharge) -> Decimal:
    """What a charge asks of the tenant: its fee while pending, once decided the part
    billed (nothing of a waived one)."""
    if charge.status == OverageCharge.Status.PENDING:
        return charge.amount
    return charge.billed_amount


def period_owed(*, tenant: Tenant, period: BillingPeriod | None) -> PeriodOwed:
    """What the tenant owes for ``period`` so far: each channel's overage charge and the
    top-ups bought in it, totalled per currency (amounts of two currencies are never
    added). The charges are read as ``overage_charge_refresh`` keeps them current —
    each unit priced by the fee schedule in effect for the tenant when it was used,
    per the notice rules (``fees.overage_fee``) — never priced again here, as the
    portal's overview reads them. Two queries; none without a period."""
    if period is None:
        return PeriodOwed(charges={}, by_currency=[])
    charges = {
        charge.channel_id: charge
        for charge in OverageCharge.objects.for_tenant(tenant)
        .filter(period=period)
        .select_related("schedule")
    }
    overage: dict[str, Decimal] = defaultdict(Decimal)
    for charge in charges.values():
        overage[charge.currency] += charge_owed(charge)
    topups: dict[str, Decimal] = dict(
        TopUp.objects.for_tenant(tenant)
        .filter(period=period)
        .order_by()
        .values("currency")
        .annotate(total=Sum("price"))
        .values_list("currency", "total")
    )
    return PeriodOwed(
        charges=charges,
        by_currency=[
            CurrencyOwed(
                currency=currency,
                overage=round_money(overage.get(currency, Decimal(0)), currency),
                topups=round_money(topups.get(currency, Decimal(0)), currency),
            )
            for currency in sorted(set(overage) | set(topups))
        ],
    )
