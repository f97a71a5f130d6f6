"""Fee schedules: prices for units beyond the included credits (policy § 5)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import Conflict, InvalidInput
from creditguard.money import round_money, unit_price_text
from metering.models import Balance, Channel, LedgerEntry
from notifications.models import Notification
from notifications.services.notify import NotificationSpec, notifications_create
from policies.models import FeeSchedule, FeeScheduleNotice, FeeTier
from tenants.models import Tenant

TierSpec = tuple[int | None, Decimal | str]  # (up to units beyond included, unit price)


def _ordered(tiers: Sequence[FeeTier]) -> list[FeeTier]:
    return sorted(tiers, key=lambda t: (t.up_to is None, t.up_to or 0))


def _graduated_cost(ordered: Sequence[FeeTier], units: int) -> Decimal:
    """The unrounded price of overage units 1…``units``, each tier pricing its own.
    The last tier is open-ended (the service refuses any other), so no unit is free."""
    total, lower = Decimal(0), 0
    for index, tier in enumerate(ordered):
        last = index == len(ordered) - 1
        upper = units if last or tier.up_to is None else min(units, tier.up_to)
        if upper > lower:
            total += tier.unit_price * (upper - lower)
        lower = max(lower, upper)
        if lower >= units:
            break
    return total


def _volume_price(ordered: Sequence[FeeTier], units: int) -> Decimal:
    """The unit price of the tier ``units`` reaches (the last tier beyond every edge)."""
    return next((t for t in ordered if t.up_to is None or units <= t.up_to), ordered[-1]).unit_price


def fee_for_units(*, mode: str, tiers: Sequence[FeeTier], units: int, currency: str) -> Decimal:
    """The fee for ``units`` beyond the included credits, rounded once (half up).

    Graduated: each tier prices the units that fall in it. Volume: the tier the
    total falls in prices every unit. Tiers are ordered by ``up_to``, the last open.
    """
    if units <= 0:
        return round_money(Decimal(0), currency)
    ordered = _ordered(tiers)
    if mode == FeeSchedule.Mode.VOLUME:
        return round_money(_volume_price(ordered, units) * units, currency)
    return round_money(_graduated_cost(ordered, units), currency)


@dataclass(frozen=True)
class FeeSpan:
    """From ``starts_at`` on (until the next span), ``schedule`` prices the tenant's units;
    ``None``: nothing does."""

    starts_at: datetime
    schedule: FeeSchedule | None


def fee_spans(*, tenant: Tenant, channel: Channel, until: datetime) -> list[FeeSpan]:
    """Which schedule priced the tenant's units of a channel when, up to ``until``, in
    time order. A schedule prices from the moment it took effect for the tenant (its
    notice's ``effective_at``); of those in effect, the tenant's own override comes
    before the global default, then the one that took effect last. Two queries."""
    notices = list(
        FeeScheduleNotice.objects.for_tenant(tenant)
        .filter(schedule__channel=channel, effective_at__lte=until)
        .select_related("schedule")
        .prefetch_related("schedule__tiers")
        .order_by("effective_at", "pk")
    )
    spans: list[FeeSpan] = []
    for index, notice in enumerate(notices):
        winner = max(notices[: index + 1], key=lambda n: (n.schedule.tenant_id is not None,
                                               n.effective_at, n.pk))  # fmt: skip
        if spans and spans[-1].starts_at == notice.effective_at:
            spans.pop()  # several took effect at the same moment: the winner of them all
        if not spans or spans[-1].schedule != winner.schedule:
            spans.append(FeeSpan(notice.effective_at, winner.schedule))
    return spans


def _schedule_at(spans: Sequence[FeeSpan], moment: datetime) -> FeeSchedule | None:
    current = None
    for span in spans:
        if span.starts_at > moment:
            break
        current = span.schedule
    return current


def fee_schedule_in_effect(*, tenant: Tenant, channel: Channel, at: datetime) -> FeeSchedule | None:
    """The schedule that prices the tenant's units of a channel used at ``at``, if any."""
    return _schedule_at(fee_spans(tenant=tenant, channel=channel, until=at), at)


@dataclass(frozen=True)
class OverageFee:
    amount: Decimal
    currency: str
    schedule: FeeSchedule | None  # the one in effect last, shown with the charge


def overage_fee(
    *,
    balance: Balance,
    units: int,
    spans: Sequence[FeeSpan],
    currency: str,
    period_start: datetime | None = None,
) -> OverageFee:
    """The fee of a balance's first ``units`` units of overage, from its ledger by time.

    The period's credits, as they stand, cover its first units used; its overage units
    are the ones used after them, in ledger order, numbered from 1. Each is priced by the
    schedule in effect when its usage entry was booked, at the tier its number falls in
    (volume: at the tier the period's ``units`` reach), or not at all before any took
    effect; the sum is rounded once. One query for the usage entries — none when one
    schedule was in effect since ``period_start`` (every usage entry is booked after it).
    """
    last = spans[-1].schedule if spans else None
    currency = last.currency if last is not None else currency
    if units <= 0 or not any(span.schedule for span in spans):
        return OverageFee(round_money(Decimal(0), currency), currency, last)
    if period_start is not None and all(span.starts_at <= period_start for span in spans):
        assert last is not None
        fee = fee_for_units(mode=last.mode, tiers=list(last.tiers.all()), units=units,
                            currency=currency)  # fmt: skip
        return OverageFee(fee, currency, last)
    covered = balance.used - balance.overage_units  # the units the credits cover
    first, end = covered, covered + units  # overage positions [first, end) in use order
    total, position = Decimal(0), 0
    entries = (
        LedgerEntry.objects.filter(balance=balance, kind=LedgerEntry.Kind.USAGE)
        .order_by("created_at", "pk")
        .values_list("created_at", "used_delta")
    )
    for booked_at, used in entries:
        start, position = position, position + used
        low, high = max(start, first) - first, min(position, end) - first
        schedule = _schedule_at(spans, booked_at)
        if high <= low or schedule is None:
            continue
        ordered = _ordered(list(schedule.tiers.all()))
        if schedule.mode == FeeSchedule.Mode.VOLUME:
            total += _volume_price(ordered, units) * (high - low)
        else:
            total += _graduated_cost(ordered, high) - _graduated_cost(ordered, low)
        if position >= end:
            break
    return OverageFee(round_money(total, currency), currency, last)


def _validate_tiers(tiers: Iterable[TierSpec]) -> list[tuple[int | None, Decimal]]:
    parsed: list[tuple[int | None, Decimal]] = []
    for index, (up_to, price) in enumerate(tiers):
        try:
            unit_price = Decimal(str(price))
        except InvalidOperation:
            raise InvalidInput(f"Tier {index + 1}: {price!r} is not a price.") from None
        if unit_price < 0 or not unit_price.is_finite():
            raise InvalidInput(f"Tier {index + 1}: the price must be 0 or more.")
        if up_to is not None and (type(up_to) is not int or up_to < 1):
            raise InvalidInput(f"Tier {index + 1}: 'up to' must be a whole number of at least 1.")
        parsed.append((up_to, unit_price))
    if not parsed:
        raise InvalidInput("A fee schedule needs at least one tier.")
    edges = [up_to for up_to, _ in parsed]
    if edges[-1] is not None or None in edges[:-1]:
        raise InvalidInput("Only the last tier is open-ended, and it must be.")
    bounded = [edge for edge in edges[:-1] if edge is not None]
    if bounded != sorted(set(bounded)):
        raise InvalidInput("Tier edges must rise.")
    return parsed


@transaction.atomic
def fee_schedule_create(
    *,
    channel: Channel,
    name: str,
    tiers: Iterable[TierSpec],
    currency: str = "EUR",
    mode: str = FeeSchedule.Mode.GRADUATED,
    tenant: Tenant | None = None,
    effective_from: datetime | None = None,
    reason: str = "",
    actor: User | None = None,
    now: datetime | None = None,
) -> FeeSchedule:
    """A new fee schedule (global when ``tenant`` is None), with its tiers. It applies
    to a tenant only once the tenant has been notified (:func:`fee_schedule_notify`)."""
    now = now or timezone.now()
    if mode not in FeeSchedule.Mode.values:
        raise InvalidInput(f"Unknown tier mode {mode!r}.")
    parsed = _validate_tiers(tiers)
    schedule = FeeSchedule.objects.create(
        channel=channel, tenant=tenant, name=name, mode=mode, currency=currency.upper(),
        effective_from=effective_from or now, author=actor, reason=reason, created_at=now,
    )  # fmt: skip
    FeeTier.objects.bulk_create(
        [FeeTier(schedule=schedule, up_to=up_to, unit_price=price) for up_to, price in parsed]
    )
    audit_record(
        actor=actor, action="fee_schedule.create", tenant=tenant, obj=schedule, before=None,
        after={"channel": channel.code, "mode": mode, "currency": schedule.currency,
               "effective_from": schedule.effective_from,
               "tiers": [[up_to, str(price)] for up_to, price in parsed]},
        reason=reason, now=now,
    )  # fmt: skip
    return schedule


def fee_tiers_validate(tiers: Iterable[TierSpec]) -> list[tuple[int | None, Decimal]]:
    """The tiers parsed, or ``InvalidInput`` saying what is wrong with them: rising edges,
    the last one (only) open, prices of 0 or more. For forms that check before saving."""
    return _validate_tiers(tiers)


def _schedule_state(schedule: FeeSchedule, tiers: Iterable[TierSpec]) -> dict[str, object]:
    return {
        "name": schedule.name, "channel": schedule.channel_id, "tenant": schedule.tenant_id,
        "mode": schedule.mode, "currency": schedule.currency,
        "effective_from": schedule.effective_from,
        "tiers": [[up_to, str(price)] for up_to, price in tiers],
    }  # fmt: skip


def _refuse_if_notified(schedule: FeeSchedule) -> None:
    if FeeScheduleNotice.objects.filter(schedule=schedule).exists():
        raise Conflict(
            "Tenants were notified of this schedule: it no longer changes. Publish a new one."
        )


@transaction.atomic
def fee_schedule_update(
    *,
    schedule: FeeSchedule,
    channel: Channel,
    name: str,
    tiers: Iterable[TierSpec],
    currency: str,
    mode: str,
    tenant: Tenant | None,
    effective_from: datetime,
    reason: str = "",
    actor: User | None = None,
    now: datetime | None = None,
) -> FeeSchedule:
    """Change a schedule nobody was notified of yet, with its tiers (replaced as a whole),
    audited with the schedule and tiers before and after. A notified schedule is refused
    (``Conflict``). The schedule row is locked, so a notification under way is waited for."""
    now = now or timezone.now()
    if mode not in FeeSchedule.Mode.values:
        raise InvalidInput(f"Unknown tier mode {mode!r}.")
    parsed = _validate_tiers(tiers)
    current = FeeSchedule.objects.select_for_update().get(pk=schedule.pk)
    _refuse_if_notified(current)
    before = _schedule_state(current, current.tiers.values_list("up_to", "unit_price"))
    current.channel, current.tenant, current.name, current.mode = channel, tenant, name, mode
    current.currency, current.effective_from = currency.upper(), effective_from
    current.reason, current.author = reason, actor
    current.save()
    current.tiers.all().delete()
    FeeTier.objects.bulk_create(
        [FeeTier(schedule=current, up_to=up_to, unit_price=price) for up_to, price in parsed]
    )
    audit_record(
        actor=actor, action="fee_schedule.edit", tenant=current.tenant, obj=current,
        before=before, after=_schedule_state(current, parsed), reason=reason, now=now,
    )  # fmt: skip
    return current


@transaction.atomic
def fee_schedule_delete(
    *, schedule: FeeSchedule, actor: User | None = None, now: datetime | None = None
) -> None:
    """Delete a schedule nobody was notified of (a draft), audited; a notified one is
    refused (``Conflict``): tenants were told of it and charges may refer to it."""
    now = now or timezone.now()
    current = FeeSchedule.objects.select_for_update().get(pk=schedule.pk)
    _refuse_if_notified(current)
    before = _schedule_state(current, current.tiers.values_list("up_to", "unit_price"))
    audit_record(
        actor=actor, action="fee_schedule.delete", tenant=current.tenant, obj=current,
        before=before, after=None, reason="", now=now,
    )  # fmt: skip
    current.delete()


def fee_effective_at(*, schedule: FeeSchedule, notified_at: datetime) -> datetime:
    """When a schedule a tenant is told of at ``notified_at`` takes effect for it: its own
    start, but no earlier than ``FEE_NOTICE_DAYS`` after the notice."""
    return max(schedule.effective_from, notified_at + timedelta(days=settings.FEE_NOTICE_DAYS))


@transaction.atomic
def fee_schedule_notify(
    *,
    schedule: FeeSchedule,
    tenants: Iterable[Tenant] | None = None,
    actor: User | None = None,
    now: datetime | None = None,
) -> int:
    """Record that tenants were told of a schedule (all it concerns by default) and tell
    them: it prices their units from :func:`fee_effective_at` on, the date the notice
    names. Telling a tenant twice keeps the first time. Returns how many tenants were
    newly notified."""
    now = now or timezone.now()
    if tenants is None:
        own = schedule.tenant
        tenants = [own] if own is not None else Tenant.objects.exclude(status=Tenant.Status.CLOSED)
    targets = list(tenants)
    if schedule.tenant_id is not None and any(t.pk != schedule.tenant_id for t in targets):
        raise InvalidInput("A tenant's own fee schedule is notified to that tenant only.")
    new, effective_at = fee_notices_record(schedule=schedule, tenants=targets, now=now, actor=actor)
    channel = schedule.channel
    notifications_create(
        specs=[
            NotificationSpec(
                tenant_id=t.pk,
                kind=Notification.Kind.FEE_SCHEDULE_NOTICE,
                dedupe_key=f"fee_schedule:{schedule.pk}:{t.pk}",
                payload={"channel": channel.code, "channel_name": channel.name,
                         **fee_schedule_terms(schedule, effective_at)},
            )
            for t in new
        ],
        now=now,
    )  # fmt: skip
    return len(new)


def fee_notices_record(
    *, schedule: FeeSchedule, tenants: Sequence[Tenant], now: datetime, actor: User | None = None
) -> tuple[list[Tenant], datetime]:
    """Record, audited, that ``tenants`` were told of ``schedule`` at ``now`` (those told
    before keep their first notice); returns the tenants newly told and when the schedule
    takes effect for them. The caller sends what tells them. Inside its transaction."""
    already = set(
        FeeScheduleNotice.objects.filter(schedule=schedule).values_list("tenant_id", flat=True)
    )
    new = [t for t in tenants if t.pk not in already]
    effective_at = fee_effective_at(schedule=schedule, notified_at=now)
    FeeScheduleNotice.objects.bulk_create(
        [FeeScheduleNotice(schedule=schedule, tenant=t, notified_at=now, effective_at=effective_at)
         for t in new],
        ignore_conflicts=True,
    )  # fmt: skip
    if new:
        audit_record(
            actor=actor, action="fee_schedule.notify", tenant=schedule.tenant, obj=schedule,
            before=None, after={"tenants": [t.slug for t in new],
                                "effective_at": effective_at.isoformat()},
            reason="", now=now,
        )  # fmt: skip
    return new, effective_at


def fee_schedule_terms(schedule: FeeSchedule, effective_at: datetime) -> dict[str, object]:
    """What a notice tells of a schedule: currency, mode, tiers and when it takes effect."""
    return {
        "currency": schedule.currency, "mode": schedule.mode,
        "tiers": [[tier.up_to, unit_price_text(tier.unit_price)] for tier in schedule.tiers.all()],
        "effective_from": effective_at.isoformat(),
    }  # fmt: skip
