"""Reads of balances, shared by the API, the dashboard and the workers (usage over time:
``metering.usage``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from django.db.models import Case, F, IntegerField, OuterRef, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from creditguard.errors import NotFound
from metering.hooks import LimitTerms, rules_reader
from metering.levels import NEAR_LIMIT_PERCENT, usage_level
from metering.models import Authorization, Balance, BillingPeriod, Channel, Grant
from metering.services.periods import PeriodBounds, period_bounds
from tenants.models import Tenant


@dataclass(frozen=True)
class ChannelBalance:
    channel: Channel
    included: int
    promotional: int
    topped_up: int
    available: int
    used: int
    reserved: int
    hard_limit: int | None
    thresholds: tuple[int, ...]
    action: str
    restriction: str | None  # "suspended" or "restricted" by staff, else None
    forecast_used: int | None
    forecast_limit_reached_at: datetime | None

    @property
    def remaining(self) -> int:
        return max(self.available - self.used - self.reserved, 0)

    @property
    def overage_units(self) -> int:
        return max(self.used - self.available, 0)

    @property
    def used_percent(self) -> float:
        return usage_level(used=self.used, available=self.available)

    @property
    def thresholds_crossed(self) -> list[int]:
        percent = self.used_percent
        return [threshold for threshold in self.thresholds if percent >= threshold]

    @property
    def status(self) -> str:
        if self.restriction is not None:
            return self.restriction
        if self.overage_units > 0:
            return "over_limit"
        percent = self.used_percent
        if percent >= 100:
            return "at_limit"
        if percent >= NEAR_LIMIT_PERCENT:
            return "near_limit"
        return "ok"


@dataclass(frozen=True)
class TenantBalances:
    bounds: PeriodBounds
    period: BillingPeriod | None
    channels: list[ChannelBalance]
    # The terms in force of each channel, by channel id, as the rules reader gave them: a
    # page that shows them too reads them from here rather than again.
    rules: Mapping[int, LimitTerms] = field(default_factory=dict)


def forecast(
    *,
    used: int,
    available: int,
    bounds: PeriodBounds,
    now: datetime,
    hard_limit: int | None = None,
) -> tuple[int | None, datetime | None]:
    """Linear projection of the period's usage from its rate so far, and when that rate
    reaches the next limit within the period: the available credits, or once past them,
    the hard ceiling (``available + hard_limit``; no ceiling when ``hard_limit`` is None)."""
    elapsed = (min(now, bounds.ends_at) - bounds.starts_at).total_seconds()
    total = (bounds.ends_at - bounds.starts_at).total_seconds()
    if elapsed < 3600 or used == 0:
        return (used if elapsed >= 3600 else None), None
    rate = used / elapsed
    projected = round(rate * total)
    limits = [available] + ([available + hard_limit] if hard_limit is not None else [])
    ahead = [limit for limit in limits if limit > used]
    reached_at = None
    if ahead and projected >= ahead[0]:
        reached_at = bounds.starts_at + timedelta(seconds=ahead[0] / rate)
    return projected, reached_at


# What a grant adds to its balance's ``available``: its units less reductions, and once
# expired only what was drawn from it (the undrawn rest left with the expiry entry). So
# included + promotional + topped_up is ``available``.
GRANT_UNITS_IN_AVAILABLE = Case(
    When(expired_at__isnull=False, then=F("drawn_units")),
    default=F("units") - F("reduced_units"),
)


def balances_for_tenant(*, tenant: Tenant, now: datetime | None = None) -> TenantBalances:
    """The current period's balance per channel: every active channel, and any
    inactive one that has a balance this period, with the terms of the rules in
    force and staff restrictions. A fixed number of queries, whatever the history."""
    now = now or timezone.now()
    bounds = period_bounds(tenant=tenant, at=now)
    period = BillingPeriod.objects.for_tenant(tenant).filter(starts_at=bounds.starts_at).first()
    balances: dict[int, Balance] = {}
    grant_totals: dict[tuple[int, str], int] = {}
    if period is not None:
        balances = {
            b.channel_id: b for b in Balance.objects.for_tenant(tenant).filter(period=period)
        }
        for row in (
            Grant.objects.for_tenant(tenant)
            .filter(balance__period=period)
            .values("balance__channel_id", "kind")
            .annotate(units=Sum(GRANT_UNITS_IN_AVAILABLE))
        ):
            grant_totals[(row["balance__channel_id"], row["kind"])] = row["units"]
    channels = [c for c in Channel.objects.all() if c.active or c.pk in balances]
    rules = rules_reader().effective_rules(tenant=tenant, channels=channels, at=now)
    restricted = rules_reader().restriction_states(tenant=tenant, at=now)

    rows: list[ChannelBalance] = []
    for channel in channels:
        balance = balances.get(channel.pk)
        rule = rules[channel.pk]
        if balance is None:
            # Not opened yet: what opening it now would grant.
            included = rule.included_units
            promotional = topped_up = used = reserved = 0
            available = included
        else:
            included = grant_totals.get((channel.pk, Grant.Kind.INCLUDED), 0)
            promotional = grant_totals.get((channel.pk, Grant.Kind.PROMOTIONAL), 0)
            topped_up = grant_totals.get((channel.pk, Grant.Kind.PURCHASED), 0)
            available, used, reserved = balance.available, balance.used, balance.reserved
        projected, reached_at = forecast(
            used=used, available=available, hard_limit=rule.hard_limit, bounds=bounds, now=now
        )
        whole, own = restricted.get(None), restricted.get(channel.pk)
        rows.append(
            ChannelBalance(
                channel=channel,
                included=included,
                promotional=promotional,
                topped_up=topped_up,
                available=available,
                used=used,
                reserved=reserved,
                hard_limit=rule.hard_limit,
                thresholds=rule.warning_thresholds,
                action=rule.action,
                restriction="suspended" if "suspended" in (whole, own) else (whole or own),
                forecast_used=projected,
                forecast_limit_reached_at=reached_at,
            )
        )
    return TenantBalances(bounds=bounds, period=period, channels=rows, rules=rules)


def granted_units(kind: str, *, purchased_here: bool | None = None) -> Coalesce:
    """An annotation of a ``Balance`` queryset: Σ units granted less units reduced, of the
    balance's grants of ``kind`` (``purchased_here``: only top-ups bought for it, or only
    units carried in). What was granted, not what is left: a closed period's expired
    grants still count whole, as the billing export and the portal's usage read them
    (``available`` after the close holds only what was drawn)."""
    grants = Grant.objects.filter(balance=OuterRef("pk"), kind=kind)
    if purchased_here is not None:
        grants = grants.filter(topup__isnull=not purchased_here)
    total = (
        grants.order_by().values("balance")
        .annotate(total=Sum(F("units") - F("reduced_units"))).values("total")
    )  # fmt: skip
    return Coalesce(Subquery(total, output_field=IntegerField()), Value(0))


def balances_by_period(*, tenant: Tenant, channel: Channel, periods: int) -> list[Balance]:
    """The tenant × channel's balances of its last ``periods`` periods (the current one
    included, if opened), newest first, with their period: the units used and available
    per period, and what was granted (``included_units``, ``promotional_units``,
    ``purchased_units``: top-ups and units carried in), as the billing export reads them.
    One query."""
    return list(
        Balance.objects.for_tenant(tenant)
        .filter(channel=channel)
        .select_related("period")
        .annotate(
            included_units=granted_units(Grant.Kind.INCLUDED),
            promotional_units=granted_units(Grant.Kind.PROMOTIONAL),
            purchased_units=granted_units(Grant.Kind.PURCHASED),
        )
        .order_by("-period__starts_at")[:periods]
    )


def authorization_state(
    *, tenant: Tenant, public_id: UUID, now: datetime | None = None
) -> Authorization:
    """A tenant's authorization as it stands at ``now``, with its channel; another
    tenant's or an unknown id is ``NotFound``. A reservation held past its expiry reads
    ``expired`` (not saved): it can no longer be committed, and the sweeper
    (``authorizations_expire``) ends it and returns its units shortly. One query."""
    now = now or timezone.now()
    authorization = (
        Authorization.objects.for_tenant(tenant)
        .select_related("channel")
        .filter(public_id=public_id)
        .first()
    )
    if authorization is None:
        raise NotFound("No such authorization.")
    expires_at = authorization.expires_at
    if authorization.status == Authorization.Status.HELD and expires_at and expires_at <= now:
        authorization.status = Authorization.Status.EXPIRED
    return authorization
