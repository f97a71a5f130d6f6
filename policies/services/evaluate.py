"""Evaluation: turn balances into warnings, overage charges and top-ups (policy § 6).

Batch-oriented: a batch of balances costs a fixed number of queries for the
warnings, whatever its size (SPEC §7: the sweep queries per batch, never per tenant);
overage charges and automatic top-ups are refreshed only for the balances that
need them. Idempotent: notifications have unique dedupe keys, so running an
evaluation twice, or in two workers at once, notifies once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from metering.levels import NEAR_LIMIT_PERCENT, usage_level, usage_percent
from metering.models import Balance, BillingPeriod
from metering.selectors import forecast
from metering.services.periods import PeriodBounds
from notifications.models import Notification
from notifications.services.notify import NotificationSpec, notifications_create
from policies.models import Action, AutoTopUp, LimitRule, TopUpOffer, TopUpPack
from policies.selectors import EffectiveRule, effective_rule, rule_terms
from policies.services.overage import overage_charge_refresh
from policies.services.topups import auto_topup_run, topup_offer_create

logger = logging.getLogger(__name__)

BATCH = 1000
# A forecast needs a day of history before it is worth a warning.
FORECAST_MIN_ELAPSED = timedelta(days=1)


@dataclass
class EvaluationResult:
    balances: int = 0
    notifications: int = 0
    batches: int = 0

    def add(self, other: EvaluationResult) -> None:
        self.balances += other.balances
        self.notifications += other.notifications
        self.batches += other.batches


def _rules(balances: list[Balance], now: datetime) -> dict[tuple[int, int], EffectiveRule]:
    """The rule in force per tenant × channel of the batch: one query (plus one per pair
    without a rule of its own, which tenants made by the service do not have)."""
    rules: dict[tuple[int, int], EffectiveRule] = {}
    tenant_ids = {b.tenant_id for b in balances}
    for rule in (
        LimitRule.objects.filter(tenant_id__in=tenant_ids, effective_from__lte=now)
        .order_by("tenant_id", "channel_id", "-version")
    ):  # fmt: skip
        key = (rule.tenant_id, rule.channel_id)
        if key not in rules:
            rules[key] = rule_terms(rule, source=f"rule v{rule.version}", rule=rule)
    for balance in balances:
        key = (balance.tenant_id, balance.channel_id)
        if key not in rules:
            rules[key] = effective_rule(tenant=balance.tenant, channel=balance.channel, at=now)
    return rules


def _figures(balance: Balance, bounds: PeriodBounds, now: datetime) -> dict[str, Any]:
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


def _past_limit_terms(rule: EffectiveRule) -> dict[str, Any]:
    return {
        "action_past_limit": rule.action,
        "restrict_units": rule.restrict_units,
        "restrict_window": rule.restrict_window,
        "hard_limit": rule.hard_limit,
    }


def balances_evaluate(*, balances: list[Balance], now: datetime | None = None) -> EvaluationResult:
    """Evaluate one batch of balances (with tenant, channel and period loaded)."""
    now = now or timezone.now()
    if not balances:
        return EvaluationResult()
    rules = _rules(balances, now)
    packs: dict[int, TopUpPack] = {}
    for candidate_pack in TopUpPack.objects.filter(active=True).order_by("units"):
        packs.setdefault(candidate_pack.channel_id, candidate_pack)

    candidates: list[tuple[Balance, NotificationSpec, int | None]] = []
    for balance in balances:
        rule = rules[(balance.tenant_id, balance.channel_id)]
        period = balance.period
        if now >= period.ends_at:
            continue  # a past period's late events: its charge is refreshed, no warnings
        bounds = PeriodBounds(
            label=period.label, starts_at=period.starts_at, ends_at=period.ends_at
        )
        figures = _figures(balance, bounds, now)
        used_percent = usage_level(used=balance.used, available=balance.available)
        for threshold in rule.warning_thresholds:
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
                payload={**figures, "threshold": threshold, **_past_limit_terms(rule)},
            )
            candidates.append((balance, spec, threshold))
        reached = figures["limit_reached_on"]
        if (
            reached
            and used_percent < 100
            and now - period.starts_at >= FORECAST_MIN_ELAPSED
            and now < period.ends_at
        ):
            candidates.append((balance, NotificationSpec(
                tenant_id=balance.tenant_id,
                kind=Notification.Kind.FORECAST_WARNING,
                dedupe_key=f"forecast:{balance.pk}",
                payload={**figures, **_past_limit_terms(rule)},
            ), None))  # fmt: skip
        if balance.overage_units > 0 and rule.action in (Action.NOTIFY_ONLY, Action.CHARGE_OVERAGE):
            candidates.append((balance, NotificationSpec(
                tenant_id=balance.tenant_id,
                kind=Notification.Kind.OVERAGE_FEE_NOTICE,
                dedupe_key=f"overage:{balance.pk}",
                payload={**figures, **_past_limit_terms(rule)},
            ), None))  # fmt: skip

    existing = set(
        Notification.objects.filter(
            dedupe_key__in=[spec.dedupe_key for _, spec, _ in candidates]
        ).values_list("dedupe_key", flat=True)
    )
    fresh = [(b, spec, t) for b, spec, t in candidates if spec.dedupe_key not in existing]
    # A warning near a limit (NEAR_LIMIT_PERCENT) carries a top-up offer, one per balance
    # and evaluation.
    specs: list[NotificationSpec] = []
    offers: dict[int, TopUpOffer] = {}
    for warned, spec, level in fresh:
        pack = packs.get(warned.channel_id)
        if level is not None and level >= NEAR_LIMIT_PERCENT and pack is not None:
            offer = offers.get(warned.pk)
            if offer is None:
                offer = offers[warned.pk] = topup_offer_create(
                    tenant=warned.tenant, pack=pack, source=TopUpOffer.Source.WARNING, now=now
                )
            spec.payload["offer"] = {
                "id": str(offer.public_id),
                "units": offer.units,
                "price": str(offer.price),
                "currency": offer.currency,
                "expires_at": offer.expires_at.isoformat(),
            }
        specs.append(spec)
    created = notifications_create(specs=specs, now=now)

    _refresh_charges_and_topups(balances, rules, now)
    _mark_evaluated(balances)
    return EvaluationResult(balances=len(balances), notifications=len(created), batches=1)


def _refresh_charges_and_topups(
    balances: list[Balance], rules: dict[tuple[int, int], EffectiveRule], now: datetime
) -> None:
    """Overage charges of balances that moved since their last evaluation and are over;
    automatic top-ups where configured and the remaining credits are low."""
    moved_over = [b for b in balances if b.version > b.evaluated_version and b.overage_units > 0]
    for balance in moved_over:
        overage_charge_refresh(
            tenant=balance.tenant, channel=balance.channel, period=balance.period, now=now
        )
    settings_by_pair = {
        (a.tenant_id, a.channel_id): a
        for a in AutoTopUp.objects.filter(
            tenant_id__in={b.tenant_id for b in balances}, enabled=True
        )
    }
    for balance in balances:
        auto = settings_by_pair.get((balance.tenant_id, balance.channel_id))
        if (
            auto is not None
            and balance.remaining <= auto.threshold_units
            and (balance.period.starts_at <= now < balance.period.ends_at)
        ):
            auto_topup_run(tenant=balance.tenant, channel=balance.channel, now=now)


def _mark_evaluated(balances: list[Balance]) -> None:
    """Record the version each balance was evaluated at (a later move keeps it dirty)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE metering_balance AS b SET evaluated_version = v.version
                FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, version)
                WHERE b.id = v.id AND b.evaluated_version < v.version
                """,
                [[b.pk for b in balances], [b.version for b in balances]],
            )
        return
    for balance in balances:
        Balance.objects.filter(pk=balance.pk, evaluated_version__lt=balance.version).update(
            evaluated_version=balance.version
        )


def _batches(query: Any) -> Any:
    """Keyset-paginated batches of balances with what evaluation reads."""
    last = 0
    while True:
        batch = list(
            query.filter(pk__gt=last)
            .select_related("tenant", "channel", "period")
            .order_by("pk")[:BATCH]
        )
        if not batch:
            return
        yield batch
        last = batch[-1].pk


def evaluate_pending(*, now: datetime | None = None, max_batches: int = 50) -> EvaluationResult:
    """Evaluate the balances that moved since their last evaluation, in batches."""
    now = now or timezone.now()
    result = EvaluationResult()
    dirty = Balance.objects.filter(version__gt=F("evaluated_version"))
    for count, batch in enumerate(_batches(dirty)):
        if count >= max_batches:
            break
        with transaction.atomic():
            result.add(balances_evaluate(balances=batch, now=now))
    return result


def evaluate_sweep(*, now: datetime | None = None) -> EvaluationResult:
    """Re-evaluate every balance of the open periods in force, in batches, so that a lost
    message loses nothing and time-driven warnings (forecasts) come when they are due."""
    now = now or timezone.now()
    result = EvaluationResult()
    current = Balance.objects.filter(
        period__status=BillingPeriod.Status.OPEN,
        period__starts_at__lte=now,
        period__ends_at__gt=now,
    )
    for batch in _batches(current):
        with transaction.atomic():
            result.add(balances_evaluate(balances=batch, now=now))
    return result
