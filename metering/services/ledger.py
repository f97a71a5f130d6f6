"""The credit ledger: balances, grants, draws and expiry.

Every change to a balance goes through here: it locks the balance row
(``SELECT … FOR UPDATE``), appends ledger entries and moves the balance's totals
by the same deltas in the same transaction, so that a balance always equals the
sum of its entries. Callers hold a transaction (``@transaction.atomic``). The one
exception in form, not in rule, is the one-statement authorization: its reservation and
``hold`` entry are written by this app's SQL (``metering.sql.balance_reserve_cte`` and
``hold_entry_insert_cte``), which move the balance and append the entry alike. Which
grants a usage draws from, or a reduction takes from, is planned without the database in
``metering.services.draws``; the writes stay here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from metering.hooks import rules_reader
from metering.models import Authorization, Balance, BillingPeriod, Channel, Grant, LedgerEntry
from metering.services.draws import draw_order_key, draw_plan, reduction_plan
from tenants.models import Tenant

BalanceKey = tuple[int, int]  # (channel_id, period_id)


def included_units_for(
    *, tenant: Tenant, channel: Channel, period: BillingPeriod | None, now: datetime | None = None
) -> int:
    """Included credits a balance opens with: those of the limit rule in force when it
    opens (clipped into the period, for a past period's late events)."""
    at = now or timezone.now()
    if period is not None:
        at = min(max(at, period.starts_at), period.ends_at - timedelta(microseconds=1))
    return rules_reader().effective_rule(tenant=tenant, channel=channel, at=at).included_units


def _move(balance: Balance, *, available: int = 0, used: int = 0, reserved: int = 0) -> None:
    Balance.objects.filter(pk=balance.pk).update(
        available=F("available") + available,
        used=F("used") + used,
        reserved=F("reserved") + reserved,
        version=F("version") + 1,
        updated_at=timezone.now(),
    )
    balance.available += available
    balance.used += used
    balance.reserved += reserved


def _open_balance(
    *, tenant: Tenant, channel: Channel, period: BillingPeriod, now: datetime
) -> None:
    """Create the balance row with its included grant, unless a racer already did."""
    try:
        with transaction.atomic():
            balance = Balance.objects.create(tenant=tenant, channel=channel, period=period)
    except IntegrityError:
        return
    included = included_units_for(tenant=tenant, channel=channel, period=period, now=now)
    if included > 0:
        _grant_add(
            balance=balance,
            kind=Grant.Kind.INCLUDED,
            units=included,
            expires_at=period.ends_at,
            priority=100,
            reason=f"Included credits {period.label}",
            actor=None,
            now=now,
        )


def balances_lock(
    *,
    tenant: Tenant,
    pairs: Iterable[tuple[Channel, BillingPeriod]],
    now: datetime | None = None,
) -> dict[BalanceKey, Balance]:
    """Open missing balances and lock all of them, in id order (no deadlocks
    between batches that share balances). Needs an open transaction."""
    now = now or timezone.now()
    wanted = {(channel.pk, period.pk): (channel, period) for channel, period in pairs}
    if not wanted:
        return {}
    period_ids = {period_id for _, period_id in wanted}
    channel_ids = {channel_id for channel_id, _ in wanted}

    def select() -> dict[BalanceKey, Balance]:
        rows = (
            Balance.objects.for_tenant(tenant)
            .filter(period_id__in=period_ids, channel_id__in=channel_ids)
            .order_by("pk")
            .select_for_update()
        )
        return {
            (b.channel_id, b.period_id): b for b in rows if (b.channel_id, b.period_id) in wanted
        }

    locked = select()
    missing = sorted(key for key in wanted if key not in locked)
    if missing:
        for key in missing:
            channel, period = wanted[key]
            _open_balance(tenant=tenant, channel=channel, period=period, now=now)
        locked = select()
    return locked


def balance_lock(
    *, tenant: Tenant, channel: Channel, period: BillingPeriod, now: datetime | None = None
) -> Balance:
    return balances_lock(tenant=tenant, pairs=[(channel, period)], now=now)[(channel.pk, period.pk)]


def _grant_add(
    *,
    balance: Balance,
    kind: str,
    units: int,
    expires_at: datetime | None,
    priority: int,
    reason: str,
    actor: User | None,
    now: datetime,
) -> Grant:
    grant = Grant.objects.create(
        tenant_id=balance.tenant_id,
        balance=balance,
        kind=kind,
        units=units,
        priority=priority,
        expires_at=expires_at,
        reason=reason,
        created_at=now,
    )
    LedgerEntry.objects.create(
        tenant_id=balance.tenant_id,
        balance=balance,
        kind=LedgerEntry.Kind.TOPUP if kind == Grant.Kind.PURCHASED else LedgerEntry.Kind.GRANT,
        available_delta=units,
        grant=grant,
        reason=reason,
        actor=actor,
        created_at=now,
    )
    _move(balance, available=units)
    return grant


@transaction.atomic
def grant_create(
    *,
    tenant: Tenant,
    channel: Channel,
    period: BillingPeriod,
    kind: str,
    units: int,
    expires_at: datetime | None = None,
    priority: int = 100,
    reason: str = "",
    actor: User | None = None,
    now: datetime | None = None,
) -> Grant:
    """Grant ``units`` credits to the tenant × channel × period.

    Appends a grant (or top-up) entry and raises the balance's ``available`` in
    one transaction, under the balance's row lock.
    """
    if units <= 0:
        raise ValueError("A grant needs a positive number of units.")
    if kind not in Grant.Kind.values:
        raise ValueError(f"Unknown grant kind {kind!r}.")
    now = now or timezone.now()
    balance = balance_lock(tenant=tenant, channel=channel, period=period, now=now)
    return _grant_add(
        balance=balance,
        kind=kind,
        units=units,
        expires_at=expires_at,
        priority=priority,
        reason=reason,
        actor=actor,
        now=now,
    )


def _expire_due(balance: Balance, grants: Sequence[Grant], now: datetime) -> list[LedgerEntry]:
    """Expire grants past their expiry: their undrawn units leave ``available``."""
    entries: list[LedgerEntry] = []
    for grant in grants:
        if grant.expired_at is None and grant.expires_at is not None and grant.expires_at <= now:
            Grant.objects.filter(pk=grant.pk).update(expired_at=now)
            grant.expired_at = now
            if grant.undrawn_units > 0:
                entries.append(
                    LedgerEntry(
                        tenant_id=balance.tenant_id,
                        balance=balance,
                        kind=LedgerEntry.Kind.EXPIRY,
                        available_delta=-grant.undrawn_units,
                        grant=grant,
                        reason="Grant expired",
                        created_at=now,
                    )
                )
                _move(balance, available=-grant.undrawn_units)
    return entries


def usage_apply(
    *,
    balances: dict[BalanceKey, Balance],
    units_by_balance: dict[BalanceKey, tuple[int, int]],
    batch_id: uuid.UUID | None,
    now: datetime,
) -> list[LedgerEntry]:
    """Book usage on locked balances: one usage entry per balance, drawn from its
    grants in draw order. ``units_by_balance`` maps a key to (units, event count).
    """
    touched = {key: value for key, value in units_by_balance.items() if value[0] > 0}
    if not touched:
        return []
    balance_ids = [balances[key].pk for key in touched]
    grants_by_balance: dict[int, list[Grant]] = {}
    for grant in Grant.objects.filter(balance_id__in=balance_ids, expired_at__isnull=True):
        grants_by_balance.setdefault(grant.balance_id, []).append(grant)

    entries: list[LedgerEntry] = []
    for key, (units, event_count) in sorted(touched.items()):
        balance = balances[key]
        grants = grants_by_balance.get(balance.pk, [])
        entries.extend(_expire_due(balance, grants, now))
        plan = draw_plan(grants, units, now)
        for draw in plan:
            if draw.grant is not None:
                Grant.objects.filter(pk=draw.grant.pk).update(
                    drawn_units=F("drawn_units") + draw.units
                )
                draw.grant.drawn_units += draw.units
        entries.append(
            LedgerEntry(
                tenant_id=balance.tenant_id,
                balance=balance,
                kind=LedgerEntry.Kind.USAGE,
                used_delta=units,
                draws=[
                    {"grant": draw.grant.pk if draw.grant else None, "units": draw.units}
                    for draw in plan
                ],
                batch_id=batch_id,
                event_count=event_count,
                created_at=now,
            )
        )
        _move(balance, used=units)
    LedgerEntry.objects.bulk_create(entries)
    return entries


@transaction.atomic
def grants_expire_due(*, now: datetime | None = None) -> int:
    """Expire every grant past its expiry (beat runs this): its undrawn units leave
    ``available`` with an ``expiry`` entry, balance by balance under the row lock. Usage
    expires due grants of its own balance too; this catches balances nobody uses.
    Returns how many entries it wrote. Safe to run twice or in parallel."""
    now = now or timezone.now()
    balance_ids = (
        Grant.objects.filter(expired_at__isnull=True, expires_at__lte=now)
        .values_list("balance_id", flat=True)
        .distinct()
    )
    written = 0
    for balance_id in list(balance_ids):
        with transaction.atomic():
            balance = Balance.objects.select_for_update().get(pk=balance_id)
            grants = list(Grant.objects.filter(balance=balance, expired_at__isnull=True))
            entries = _expire_due(balance, grants, now)
            LedgerEntry.objects.bulk_create(entries)
            written += len(entries)
    return written


@transaction.atomic
def grants_carry_forward(
    *, balance: Balance, into: BillingPeriod, kind: str, now: datetime | None = None
) -> int:
    """Carry the undrawn units of ``balance``'s grants of ``kind`` that outlive ``now``
    into the same tenant × channel's balance of ``into`` (its next period), as grants of
    the same kind, priority and expiry. Returns how many units were carried.

    Each carried grant is closed in its balance with an ``expiry`` entry of the units
    carried and reopened in the next with a grant entry of the same units, reasons naming
    both periods: the sum of entries of both balances stays their totals. At most the
    balance's remaining credits (available less used) are carried: credits granted after
    usage went past the others already paid for that usage. Grants that would be drawn
    last are carried first. Locks the balance, then the next period's (the close's order).
    Running it twice carries nothing more: the grants it carried are closed."""
    now = now or timezone.now()
    source = Balance.objects.select_for_update().select_related("tenant", "channel", "period")
    source_balance = source.get(pk=balance.pk)
    grants = list(Grant.objects.filter(balance=source_balance, expired_at__isnull=True))
    entries = _expire_due(source_balance, grants, now)
    outliving = sorted(
        (g for g in grants if g.kind == kind and g.expired_at is None and g.undrawn_units > 0),
        key=draw_order_key,
        reverse=True,
    )
    if not outliving:
        LedgerEntry.objects.bulk_create(entries)
        return 0
    target = balance_lock(
        tenant=source_balance.tenant, channel=source_balance.channel, period=into, now=now
    )
    budget = max(source_balance.available - source_balance.used, 0)
    carried = 0
    for grant in outliving:
        units = min(grant.undrawn_units, budget - carried)
        # Closed here whether or not anything is left to carry, so that no later expiry
        # takes units from a period whose charges are final.
        Grant.objects.filter(pk=grant.pk).update(expired_at=now)
        if units <= 0:
            continue
        entries.append(
            LedgerEntry(
                tenant_id=source_balance.tenant_id,
                balance=source_balance,
                kind=LedgerEntry.Kind.EXPIRY,
                available_delta=-units,
                grant=grant,
                reason=f"{grant.kind.capitalize()} credits carried to {into.label}",
                created_at=now,
            )
        )
        _move(source_balance, available=-units)
        _grant_add(
            balance=target,
            kind=grant.kind,
            units=units,
            expires_at=grant.expires_at,
            priority=grant.priority,
            reason=f"{grant.kind.capitalize()} credits carried from {source_balance.period.label}",
            actor=None,
            now=now,
        )
        carried += units
    LedgerEntry.objects.bulk_create(entries)
    return carried


def reservation_hold(
    *, balance: Balance, units: int, authorization: Authorization, now: datetime
) -> LedgerEntry:
    """Reserve ``units`` on a locked balance for an authorization."""
    entry = LedgerEntry.objects.create(
        tenant_id=balance.tenant_id,
        balance=balance,
        kind=LedgerEntry.Kind.HOLD,
        reserved_delta=units,
        authorization=authorization,
        created_at=now,
    )
    _move(balance, reserved=units)
    return entry


def reservation_release(
    *, balance: Balance, units: int, authorization: Authorization, reason: str, now: datetime
) -> LedgerEntry:
    """Give back ``units`` an authorization reserved on a locked balance."""
    entry = LedgerEntry.objects.create(
        tenant_id=balance.tenant_id,
        balance=balance,
        kind=LedgerEntry.Kind.RELEASE,
        reserved_delta=-units,
        authorization=authorization,
        reason=reason,
        created_at=now,
    )
    _move(balance, reserved=-units)
    return entry


def credits_reduce_locked(
    *,
    balance: Balance,
    units: int,
    reason: str,
    actor: User | None,
    now: datetime,
    only_included: bool = False,
) -> int:
    """Take up to ``units`` undrawn credits away from a locked balance's grants
    (one ``reduction`` entry per grant). Returns how many units were reduced:
    units already used cannot be taken back."""
    grants = list(Grant.objects.filter(balance=balance, expired_at__isnull=True))
    entries = _expire_due(balance, grants, now)
    if only_included:
        grants = [g for g in grants if g.kind == Grant.Kind.INCLUDED]
    reduced = 0
    for draw in reduction_plan(grants, units, now):
        assert draw.grant is not None
        Grant.objects.filter(pk=draw.grant.pk).update(reduced_units=F("reduced_units") + draw.units)
        draw.grant.reduced_units += draw.units
        entries.append(
            LedgerEntry(
                tenant_id=balance.tenant_id,
                balance=balance,
                kind=LedgerEntry.Kind.REDUCTION,
                available_delta=-draw.units,
                grant=draw.grant,
                reason=reason,
                actor=actor,
                created_at=now,
            )
        )
        _move(balance, available=-draw.units)
        reduced += draw.units
    LedgerEntry.objects.bulk_create(entries)
    return reduced
