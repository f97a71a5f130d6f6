"""What a balance's figures call for: each warning threshold crossed — the rule's and the
tenant's own (its alerts) —, the forecast, the overage notice. Evaluation
(``policies.services.evaluate``) chooses among them and sends."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from metering.levels import usage_level, usage_percent
from metering.models import Balance
from metering.selectors import forecast
from metering.services.periods import PeriodBounds
from notifications.models import Notification
from notifications.services.notify import NotificationSpec
from policies.models import Action, AlertThreshold
from policies.selectors import EffectiveRule

# A forecast needs a day of history before it is worth a warning.
FORECAST_MIN_ELAPSED = timedelta(days=1)

Pair = tuple[int, int]  # tenant id, channel id


def alert_thresholds_of(tenant_ids: Iterable[int]) -> dict[Pair, tuple[int, ...]]:
    """The tenants' own warning thresholds per tenant × channel: one query."""
    found: dict[Pair, list[int]] = defaultdict(list)
    for tenant_id, channel_id, percent in AlertThreshold.objects.filter(
        tenant_id__in=set(tenant_ids)
    ).values_list("tenant_id", "channel_id", "percent"):
        found[(tenant_id, channel_id)].append(percent)
    return {pair: tuple(percents) for pair, percents in found.items()}


def thresholds_together(rule: tuple[int, ...], own: tuple[int, ...]) -> list[int]:
    """The rule's thresholds and the tenant's own, each once, rising: a percentage in
    both has one dedupe key and warns once."""
    return sorted(set(rule) | set(own))


def figures(balance: Balance, bounds: PeriodBounds, now: datetime) -> dict[str, Any]:
    percent = usage_percent(used=balance.used, available=balance.available)
    projected, reached_at = forecast(
        used=balance.used, available=balance.available, bounds=bounds, now=now
    )
    return {
        "channel": balance.channel.code,
        "channel_name": balance.channel.name,
        "unit": balance.channel.unit,
        "period": balance.period.label,
        "used": balance.used,
        "available": balance.available,
        "remaining": balance.remaining,
        "overage_units": balance.overage_units,
        "percent": percent,
        "forecast_used": projected,
        "limit_reached_on": reached_at.astimezone(balance.tenant.tzinfo).date().isoformat()
        if reached_at
        else None,
    }


def past_limit_terms(rule: EffectiveRule) -> dict[str, Any]:
    return {
        "action_past_limit": rule.action,
        "restrict_units": rule.restrict_units,
        "restrict_window": rule.restrict_window,
        "hard_limit": rule.hard_limit,
    }


@dataclass(frozen=True)
class Candidate:
    """A notification a balance's figures call for, and how it ranks against the others
    of the same evaluation: the highest new one is sent and covers the rest."""

    spec: NotificationSpec
    rank: tuple[float, int]
    threshold: float | None = None


def candidates(
    balance: Balance, rule: EffectiveRule, now: datetime, own: tuple[int, ...] = ()
) -> tuple[list[Candidate], NotificationSpec | None]:
    """What the balance's figures call for now — each threshold crossed (the rule's and
    the tenant's ``own``), a forecast, the overage notice — and the fee notice a "limit
    reached" message says in its place. A threshold has the same dedupe key whoever set
    it, so that one crossed once warns once, and one removed and set again does not warn
    again in the same period."""
    period = balance.period
    bounds = PeriodBounds(label=period.label, starts_at=period.starts_at, ends_at=period.ends_at)
    shown = figures(balance, bounds, now)
    terms = past_limit_terms(rule)
    used_percent = usage_level(used=balance.used, available=balance.available)
    found: list[Candidate] = []
    for threshold in thresholds_together(rule.warning_thresholds, own):
        if used_percent < threshold:
            continue
        kind = (
            Notification.Kind.LIMIT_REACHED if threshold >= 100
            else Notification.Kind.THRESHOLD_WARNING
        )  # fmt: skip
        spec = NotificationSpec(
            tenant_id=balance.tenant_id,
            kind=kind,
            dedupe_key=f"threshold:{balance.pk}:{threshold}",
            payload={**shown, "threshold": threshold, **terms},
        )
        found.append(Candidate(spec, (threshold, 1), threshold))
    if (
        shown["limit_reached_on"]
        and used_percent < 100
        and now - period.starts_at >= FORECAST_MIN_ELAPSED
    ):
        # Lowest: a threshold warning names the day too.
        found.append(Candidate(NotificationSpec(
            tenant_id=balance.tenant_id,
            kind=Notification.Kind.FORECAST_WARNING,
            dedupe_key=f"forecast:{balance.pk}",
            payload={**shown, **terms},
        ), (-1, 0)))  # fmt: skip
    fee_notice = None
    if rule.action in (Action.NOTIFY_ONLY, Action.CHARGE_OVERAGE):
        fee_notice = NotificationSpec(
            tenant_id=balance.tenant_id,
            kind=Notification.Kind.OVERAGE_FEE_NOTICE,
            dedupe_key=f"overage:{balance.pk}",
            payload={**shown, **terms},
        )
        if balance.overage_units > 0:
            # Ranks as the limit: "limit reached" is sent in its place where a rule warns
            # at 100 %, it in place of any lower warning where a rule does not.
            found.append(Candidate(fee_notice, (100, 0)))
    return found, fee_notice
