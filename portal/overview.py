"""The overview page's figures, read from the same selectors as the API, so that the page
and ``GET /api/v1/balances`` always agree: the balances and their forecast
(``metering.selectors.balances_for_tenant``), the rules in force and scheduled, the
restrictions in force (``policies.selectors``), the open offers, and the overage charge
as ``overage_charge_refresh`` keeps it (read, never recomputed). A fixed number of
queries, whatever the length of the history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from django.utils import timezone

from metering.levels import NEAR_LIMIT_PERCENT, usage_level, usage_percent
from metering.selectors import ChannelBalance, TenantBalances, balances_for_tenant
from policies.models import (
    LimitRule,
    OverageCharge,
    PolicyAcknowledgement,
    PolicyVersion,
    Restriction,
    TopUpOffer,
)
from policies.selectors import (
    EffectiveRule,
    limit_rules_scheduled,
    restrictions_in_force,
)
from policies.services.policy import policy_upcoming
from tenants.models import Tenant


@dataclass(frozen=True)
class ChannelOverview:
    balance: ChannelBalance
    rule: EffectiveRule
    offers: list[TopUpOffer] = field(default_factory=list)
    restrictions: list[Restriction] = field(default_factory=list)
    overage: OverageCharge | None = None
    scheduled: list[LimitRule] = field(default_factory=list)

    @property
    def level(self) -> str:
        """The bar's colour: ok, near (from NEAR_LIMIT_PERCENT), at or over the limit."""
        b = self.balance
        if b.overage_units > 0:
            return "over"
        percent = usage_level(used=b.used, available=b.available)
        if percent >= 100:
            return "at"
        return "near" if percent >= NEAR_LIMIT_PERCENT else "ok"

    @property
    def percent(self) -> int | None:
        return usage_percent(used=self.balance.used, available=self.balance.available)

    @property
    def ceiling(self) -> int | None:
        """The hard ceiling in units used: the credits plus the overage allowed."""
        b = self.balance
        return None if b.hard_limit is None else b.available + b.hard_limit

    @property
    def bar(self) -> dict[str, float]:
        """Widths (percent of the bar) of the used part within the credits, of the part
        past them, and where the credits end: the bar spans the ceiling, or the credits
        or the use, whichever is larger."""
        b = self.balance
        span = max(self.ceiling or 0, b.available, b.used, 1)
        within = min(b.used, b.available)
        return {
            "within": round(100 * within / span, 2),
            "over": round(100 * max(b.used - b.available, 0) / span, 2),
            "credits": round(100 * b.available / span, 2),
        }


@dataclass(frozen=True)
class Overview:
    balances: TenantBalances
    channels: list[ChannelOverview]
    whole_tenant_restrictions: list[Restriction]
    policy_upcoming: PolicyVersion | None
    policy_acknowledged: bool


def overview_for(*, tenant: Tenant, now: datetime | None = None) -> Overview:
    now = now or timezone.now()
    balances = balances_for_tenant(tenant=tenant, now=now)
    # The rules in force as the balances read them (policies' reader: EffectiveRule).
    rules = cast(dict[int, EffectiveRule], balances.rules)
    offers: dict[int, list[TopUpOffer]] = {}
    for offer in (
        TopUpOffer.objects.for_tenant(tenant)
        .filter(status=TopUpOffer.Status.OPEN, expires_at__gt=now)
        .order_by("channel_id", "price", "pk")
    ):
        offers.setdefault(offer.channel_id, []).append(offer)
    charges: dict[int, OverageCharge] = {}
    if balances.period is not None:
        charges = {
            charge.channel_id: charge
            for charge in OverageCharge.objects.for_tenant(tenant)
            .filter(period=balances.period)
            .select_related("schedule")
            .prefetch_related("schedule__tiers")
        }
    restrictions: dict[int | None, list[Restriction]] = {}
    # A restriction in force always sets the tenant's status (as restriction_states reads).
    if tenant.status != Tenant.Status.ACTIVE:
        for restriction in restrictions_in_force(tenant=tenant, at=now):
            restrictions.setdefault(restriction.channel_id, []).append(restriction)
    scheduled: dict[int, list[LimitRule]] = {}
    for rule in limit_rules_scheduled(tenant=tenant, at=now):
        scheduled.setdefault(rule.channel_id, []).append(rule)
    upcoming = policy_upcoming(at=now)
    acknowledged = (
        upcoming is not None
        and PolicyAcknowledgement.objects.filter(tenant=tenant, version=upcoming).exists()
    )
    return Overview(
        balances=balances,
        channels=[
            ChannelOverview(
                balance=row,
                rule=rules[row.channel.pk],
                offers=offers.get(row.channel.pk, []),
                restrictions=restrictions.get(row.channel.pk, []),
                overage=charges.get(row.channel.pk),
                scheduled=scheduled.get(row.channel.pk, []),
            )
            for row in balances.channels
        ],
        whole_tenant_restrictions=restrictions.get(None, []),
        policy_upcoming=upcoming,
        policy_acknowledged=acknowledged,
    )
