"""Evaluation: turn balances into warnings, overage charges and top-ups.

Batch-oriented: a batch of balances costs a fixed number of queries for the
warnings, whatever its size (the sweep queries per batch, never per tenant);
overage charges and automatic top-ups are refreshed only for the balances that
need them, each in a short transaction of its own after the batch has committed
(``balances_evaluate``), so no batch holds hot balance rows. Idempotent:
notifications have unique dedupe keys, so running an evaluation twice, or in two
workers at once, notifies once.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from creditguard.errors import Conflict
from metering import sql as metering_sql
from metering.levels import NEAR_LIMIT_PERCENT
from metering.models import Balance, BillingPeriod
from notifications.models import Notification
from notifications.services.notify import NotificationSpec, notifications_create
from policies.models import AutoTopUp, LimitRule, OverageCharge, TopUpOffer, TopUpPack
from policies.selectors import EffectiveRule, effective_rule, rule_terms
from policies.services.overage import overage_charge_refresh
from policies.services.topups import (
    auto_topup_run,
    offer_expiry,
    offer_payload,
    open_offer,
    topup_offer_create,
)
from policies.services.warnings import Candidate, alert_thresholds_of, candidates

logger = logging.getLogger(__name__)

BATCH = 1000
# Open periods a sweep reads the balances of in one run of batches (their ids are the
# statement's parameters: within SQLite's limit of variables too).
SWEEP_PERIODS = 1000


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


def balances_evaluate(*, balances: list[Balance], now: datetime | None = None) -> EvaluationResult:
    """Evaluate one batch of balances (with tenant, channel and period loaded).

    The batch decides, then the side effects follow: its warnings, notices and their
    offers are decided and recorded in one transaction that locks no balance row; after
    it commits, each balance's overage charge and automatic top-up run in short
    transactions of their own (each service locks its one balance), and last one
    statement marks the batch evaluated. So no batch holds hot balance rows: ingestion
    and authorization into a balance being evaluated wait at most for that balance's own
    side effect. Called inside a transaction, everything shares it (tests do).

    A side effect that fails is logged and its balance is not marked evaluated, so the
    next evaluation retries it; notifications are deduplicated, so a retry notifies
    nothing twice. The same holds when the process dies before the marking.
    """
    now = now or timezone.now()
    if not balances:
        return EvaluationResult()
    with transaction.atomic():
        notified = _decide_and_notify(balances, now)
        effects = _side_effects_due(balances, now)
    failed = _run_side_effects(effects, now)
    _mark_evaluated([b for b in balances if b.pk not in failed])
    return EvaluationResult(balances=len(balances), notifications=notified, batches=1)


def _decide_and_notify(balances: list[Balance], now: datetime) -> int:
    """Decide the batch's messages and their offers and record them; how many messages
    it created. Per balance, of what its figures call for (the thresholds of its rule
    and the tenant's own alerts, the forecast, the fee notice) and was not said yet, the
    highest is sent (the current level in its figures) and covers the rest, so that a
    lower threshold never arrives later; "limit reached" says what happens past the limit
    and covers the fee notice too. The notifications are inserted first, and an offer is
    made only for a message this call inserted, so no offer is left that no message
    names; a balance has one open offer of a pack, which later warnings name again.
    A fixed number of statements per batch, no row locks."""
    rules = _rules(balances, now)
    own = alert_thresholds_of(b.tenant_id for b in balances)
    per_balance: list[tuple[Balance, list[Candidate], NotificationSpec | None]] = []
    for balance in balances:
        if now >= balance.period.ends_at:
            continue  # a past period's late events: its charge is refreshed, no warnings
        pair = (balance.tenant_id, balance.channel_id)
        found, fee_notice = candidates(balance, rules[pair], now, own.get(pair, ()))
        if found:
            per_balance.append((balance, found, fee_notice))
    # An unlocked read, to choose among what is new; the insert decides what is sent.
    existing = set(
        Notification.objects.filter(
            dedupe_key__in=[c.spec.dedupe_key for _, found, _ in per_balance for c in found]
        ).values_list("dedupe_key", flat=True)
    )
    chosen: list[tuple[Balance, NotificationSpec, bool]] = []
    for balance, found, fee_notice in per_balance:
        fresh = [c for c in found if c.spec.dedupe_key not in existing]
        if not fresh:
            continue
        message = max(fresh, key=lambda c: c.rank)
        covers = [c.spec for c in fresh if c is not message]
        if message.spec.kind == Notification.Kind.LIMIT_REACHED and fee_notice is not None:
            covers.append(fee_notice)
        near = message.threshold is not None and message.threshold >= NEAR_LIMIT_PERCENT
        spec = replace(message.spec, payload=dict(message.spec.payload), covers=tuple(covers))
        chosen.append((balance, spec, near))
    planned = _plan_offers(chosen, now)
    created = notifications_create(specs=[spec for _, spec, _ in chosen], now=now)
    for notification in created:
        if notification.dedupe_key in planned:
            _open_planned_offer(notification, *planned[notification.dedupe_key], now=now)
    return len(created)


def _plan_offers(
    chosen: list[tuple[Balance, NotificationSpec, bool]], now: datetime
) -> dict[str, tuple[Balance, TopUpPack, uuid.UUID]]:
    """A warning near a limit carries a top-up offer of the channel's smallest pack: the
    offer open for its balance, else a new one, planned (its id in the payload) and made
    once the warning is inserted. Two queries, only when a warning needs an offer."""
    near = [(balance, spec) for balance, spec, is_near in chosen if is_near]
    if not near:
        return {}
    packs: dict[int, TopUpPack] = {}
    for candidate_pack in TopUpPack.objects.filter(active=True).order_by("units", "pk"):
        packs.setdefault(candidate_pack.channel_id, candidate_pack)
    open_offers = {
        (offer.balance_id, offer.pack_id): offer
        for offer in TopUpOffer.objects.filter(
            balance__in=[balance for balance, _ in near],
            status=TopUpOffer.Status.OPEN,
            expires_at__gt=now,
        )
    }
    planned: dict[str, tuple[Balance, TopUpPack, uuid.UUID]] = {}
    for balance, spec in near:
        pack = packs.get(balance.channel_id)
        if pack is None:
            continue
        offer = open_offers.get((balance.pk, pack.pk))
        if offer is not None:
            spec.payload["offer"] = offer_payload(offer)
            continue
        public_id = uuid.uuid4()
        spec.payload["offer"] = {
            "id": str(public_id),
            "units": pack.units,
            "price": str(pack.price),
            "currency": pack.currency,
            "expires_at": offer_expiry(now=now).isoformat(),
        }
        planned[spec.dedupe_key] = (balance, pack, public_id)
    return planned


def _open_planned_offer(
    notification: Notification,
    balance: Balance,
    pack: TopUpPack,
    public_id: uuid.UUID,
    *,
    now: datetime,
) -> None:
    """Make the offer an inserted warning names. Should a concurrent evaluation have
    opened one for the balance and pack meanwhile, the warning names that one instead."""
    try:
        topup_offer_create(
            tenant=balance.tenant, pack=pack, source=TopUpOffer.Source.WARNING,
            balance=balance, public_id=public_id, now=now,
        )  # fmt: skip
    except Conflict:
        offer = open_offer(balance=balance, pack=pack, now=now)
        if offer is None:
            raise
        notification.payload["offer"] = offer_payload(offer)
        Notification.objects.filter(pk=notification.pk).update(payload=notification.payload)


@dataclass(frozen=True)
class SideEffects:
    """What a balance needs after its batch has decided."""

    balance: Balance
    refresh_charge: bool
    auto_topup: bool


def _side_effects_due(balances: list[Balance], now: datetime) -> list[SideEffects]:
    """Overage charges of balances that moved since their last evaluation and are over,
    or were over and have an open charge that must follow them down (credits added by a
    top-up or a raised limit); automatic top-ups where configured and the remaining
    credits are low. Two queries."""
    tenant_ids = {b.tenant_id for b in balances}
    settings_by_pair = {
        (a.tenant_id, a.channel_id): a
        for a in AutoTopUp.objects.filter(tenant_id__in=tenant_ids, enabled=True)
    }
    charged = set(
        OverageCharge.objects.filter(
            tenant_id__in=tenant_ids,
            period_id__in={b.period_id for b in balances},
            finalized_at__isnull=True,
            units__gt=0,
        ).values_list("tenant_id", "channel_id", "period_id")
    )
    due = []
    for balance in balances:
        auto = settings_by_pair.get((balance.tenant_id, balance.channel_id))
        effects = SideEffects(
            balance=balance,
            refresh_charge=balance.version > balance.evaluated_version
            and (
                balance.overage_units > 0
                or (balance.tenant_id, balance.channel_id, balance.period_id) in charged
            ),
            auto_topup=auto is not None
            and balance.remaining <= auto.threshold_units
            and balance.period.starts_at <= now < balance.period.ends_at,
        )
        if effects.refresh_charge or effects.auto_topup:
            due.append(effects)
    return due


def _run_side_effects(due: list[SideEffects], now: datetime) -> set[int]:
    """Each balance's side effects, in balance order, each service in its own transaction
    under its balance's row lock; the ids of the balances whose side effects failed."""
    failed: set[int] = set()
    for effects in due:
        balance = effects.balance
        try:
            if effects.refresh_charge:
                overage_charge_refresh(
                    tenant=balance.tenant, channel=balance.channel, period=balance.period, now=now
                )
            if effects.auto_topup:
                auto_topup_run(tenant=balance.tenant, channel=balance.channel, now=now)
        except Exception:
            # The balance stays unevaluated: the next evaluation (at most 15 s later, by
            # beat) tries again; the other balances need not wait for it.
            logger.exception("evaluation side effects failed for balance %s", balance.pk)
            failed.add(balance.pk)
    return failed


def _mark_evaluated(balances: list[Balance]) -> None:
    """Record the version each balance was evaluated at (a later move keeps it dirty)."""
    if metering_sql.native():
        metering_sql.balances_mark_evaluated(versions={b.pk: b.version for b in balances})
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
        result.add(balances_evaluate(balances=batch, now=now))
    return result


def evaluate_sweep(*, now: datetime | None = None) -> EvaluationResult:
    """Re-evaluate every balance of the open periods in force, in batches, so that a lost
    message loses nothing and time-driven warnings (forecasts) come when they are due."""
    now = now or timezone.now()
    result = EvaluationResult()
    # The open periods in force are read once, by themselves; each batch then reads its
    # balances by period id. Joined to the periods in every batch's statement instead, each
    # batch scanned every period ever opened: half a second a batch with three years of
    # periods for 10,000 tenants (bench.growth), a sweep's time growing with history.
    periods = list(
        BillingPeriod.objects.filter(
            status=BillingPeriod.Status.OPEN, starts_at__lte=now, ends_at__gt=now
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for start in range(0, len(periods), SWEEP_PERIODS):
        current = Balance.objects.filter(period_id__in=periods[start : start + SWEEP_PERIODS])
        for batch in _batches(current):
            result.add(balances_evaluate(balances=batch, now=now))
    return result
