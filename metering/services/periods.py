"""Billing periods: calendar months in the tenant's time zone."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from metering import sql as metering_sql
from metering.models import BillingPeriod
from tenants.models import Tenant


@dataclass(frozen=True)
class PeriodBounds:
    label: str  # YYYY-MM
    starts_at: datetime  # UTC
    ends_at: datetime  # UTC, exclusive


def month_bounds(year: int, month: int, tz: tzinfo) -> PeriodBounds:
    start_local = datetime(year, month, 1, tzinfo=tz)
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    end_local = datetime(next_year, next_month, 1, tzinfo=tz)
    return PeriodBounds(
        label=f"{year:04d}-{month:02d}",
        starts_at=start_local.astimezone(UTC),
        ends_at=end_local.astimezone(UTC),
    )


def period_bounds(*, tenant: Tenant, at: datetime) -> PeriodBounds:
    local = at.astimezone(tenant.tzinfo)
    return month_bounds(local.year, local.month, tenant.tzinfo)


def grace() -> timedelta:
    return timedelta(seconds=settings.PERIOD_GRACE_SECONDS)


def period_accepts_events(*, bounds: PeriodBounds, now: datetime) -> bool:
    """A period takes events until its end plus the grace window."""
    return now < bounds.ends_at + grace()


def period_get_or_open(*, tenant: Tenant, bounds: PeriodBounds) -> BillingPeriod:
    """The period row for these bounds, created if missing. Safe under concurrency:
    the unique constraint on (tenant, starts_at) makes a racing creator re-read."""
    period = BillingPeriod.objects.for_tenant(tenant).filter(starts_at=bounds.starts_at).first()
    if period is not None:
        return period
    try:
        with transaction.atomic():
            return BillingPeriod.objects.create(
                tenant=tenant,
                starts_at=bounds.starts_at,
                ends_at=bounds.ends_at,
                label=bounds.label,
            )
    except IntegrityError:
        return BillingPeriod.objects.for_tenant(tenant).get(starts_at=bounds.starts_at)


def periods_lock_for_booking(
    *, tenant: Tenant, bounds: Collection[PeriodBounds]
) -> dict[str, BillingPeriod]:
    """The tenant's periods of these bounds by label, opened if missing, each locked
    ``FOR SHARE`` (in start order) until the caller's transaction ends.

    Everything that books usage takes its period this way and checks ``status``
    under the lock; ``period_mark_closed`` updates the same row, which waits for shared
    holders and makes them wait. So a booking and the close of its period serialize:
    a booking holding the period is counted by the close, a booking that waited for
    the close sees the period closed. Shared locks do not block one another.
    One indexed statement when the periods exist. Needs an open transaction.
    """
    wanted = {b.label: b for b in bounds}
    if not wanted:
        return {}
    labels = sorted(wanted)

    def lock() -> dict[str, BillingPeriod]:
        rows: Iterable[BillingPeriod]
        if metering_sql.native():
            rows = metering_sql.periods_lock_shared(tenant_id=tenant.pk, labels=labels)
        else:  # SQLite (the embedded default) serializes writers: no row locks
            rows = BillingPeriod.objects.for_tenant(tenant).filter(label__in=labels)
        return {period.label: period for period in rows}

    locked = lock()
    if len(locked) < len(wanted):
        for label, missing in sorted(wanted.items()):
            if label not in locked:
                period_get_or_open(tenant=tenant, bounds=missing)
        locked = lock()
    return locked


def period_lock_of_balance(*, balance_id: int) -> BillingPeriod:
    """The period of a balance, locked ``FOR SHARE`` as ``periods_lock_for_booking``
    does, in one indexed statement. Take it before the balance row's own lock: the
    close holds the period and then locks its balances."""
    if metering_sql.native():
        return metering_sql.period_of_balance_lock_shared(balance_id=balance_id)
    return BillingPeriod.objects.get(balances__id=balance_id)


def period_mark_closed(*, period: BillingPeriod, now: datetime | None = None) -> bool:
    """Mark a period closed once its grace window has passed: its status only. Closing a
    period for good (final charges, the next period) is ``periods_close_due``'s, which calls
    this first.

    Returns True if this call closed it; False if it was closed already or is
    still inside its window. A conditional update makes concurrent calls safe:
    exactly one of them closes it. The update keeps the period row locked until
    the caller's transaction commits: bookings holding the period (see
    ``periods_lock_for_booking``) finish first, later ones wait and then see it
    closed, so whatever the caller finalises in the same transaction is final.
    """
    now = now or timezone.now()
    if now < period.ends_at + grace():
        return False
    changed = BillingPeriod.objects.filter(pk=period.pk, status=BillingPeriod.Status.OPEN).update(
        status=BillingPeriod.Status.CLOSED, closed_at=now
    )
    period.refresh_from_db(fields=["status", "closed_at"])
    return changed == 1
