"""Closing billing periods at each tenant's month end plus the grace window.

In policies, not metering: closing finalises the period's overage charges and opens the
next period under the rules in force, which are policy (metering only marks a period
closed, ``metering.services.periods.period_mark_closed``)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import OperationalError, transaction
from django.utils import timezone

from metering.models import Balance, BillingPeriod, Channel, Grant
from metering.services.ledger import balance_lock, credits_reduce_locked, grants_carry_forward
from metering.services.periods import (
    grace,
    month_bounds,
    period_get_or_open,
    period_mark_closed,
)
from policies.models import CarryOver, OverageCharge
from policies.selectors import effective_rule
from policies.services.billing_events import period_closed_emit
from policies.services.overage import (
    overage_carried_notify,
    overage_charge_finalize,
    overage_charge_refresh,
)

logger = logging.getLogger(__name__)


def periods_close_due(*, now: datetime | None = None) -> int:
    """Close every open period whose grace window has passed; returns how many this
    call closed. Each period is closed in its own transaction by a conditional update,
    so running it twice, or in two workers at once, closes each period once.

    The update holds the period row until the charges are final and committed, and
    every booking (ingestion, authorization, commit) takes that row ``FOR SHARE``
    and checks its status under the lock: the close waits for bookings already
    holding the period, and bookings arriving meanwhile wait and then see it closed.
    Lock order: the period row, then its balances, then the next period's balances.
    """
    now = now or timezone.now()
    closed = 0
    # Oldest first: a period's close opens the next one and carries overage into it, so
    # when several of a tenant's periods are due (workers down for a month, the demo's
    # history) each must close before the one after it.
    due = (
        BillingPeriod.objects.filter(status=BillingPeriod.Status.OPEN, ends_at__lte=now - grace())
        .select_related("tenant")
        .order_by("starts_at", "pk")
    )
    waiting_tenants: set[int] = set()
    for period in due:
        if period.tenant_id in waiting_tenants:
            continue  # its earlier period must close first
        try:
            with transaction.atomic():
                if period_mark_closed(period=period, now=now):
                    _finish(period=period, now=now)
                    closed += 1
        except OperationalError as exc:
            # A worker's lock_timeout (or a lost connection) on this period: the others
            # still close, and the next run (every few minutes) takes this one again.
            logger.warning("period %s of %s left for the next run: %s", period.label,
                           period.tenant.slug, exc)  # fmt: skip
            waiting_tenants.add(period.tenant_id)
    return closed


def _finish(*, period: BillingPeriod, now: datetime) -> None:
    """Finalise the period's overage charges, carrying overage into the next period where
    the rule says so, open the next period with grants from the rules in force, carry
    unexpired purchased credits into it, and tell the billing system (``period.closed``)."""
    tenant = period.tenant
    local_start = period.starts_at.astimezone(tenant.tzinfo)
    year, month = (local_start.year + 1, 1) if local_start.month == 12 else (
        local_start.year, local_start.month + 1
    )  # fmt: skip
    following = period_get_or_open(tenant=tenant, bounds=month_bounds(year, month, tenant.tzinfo))
    opening = max(now, following.starts_at)
    for balance in Balance.objects.filter(period=period).select_related("channel"):
        charge = (
            overage_charge_refresh(tenant=tenant, channel=balance.channel, period=period, now=now)
            or OverageCharge.objects.filter(
                tenant=tenant, channel=balance.channel, period=period
            ).first()
        )
        if charge is not None:
            _finalize(charge=charge, channel=balance.channel, following=following,
                      opening=opening, now=now)  # fmt: skip
        if not balance.channel.active:
            continue
        # Purchased credits stay valid for TOPUP_VALIDITY_DAYS, across periods: what is
        # left of them moves into the next period's balance, with the same expiry.
        grants_carry_forward(balance=balance, into=following, kind=Grant.Kind.PURCHASED, now=now)
        # The next period's balance opens with the included credits of the rule in force.
        balance_lock(tenant=tenant, channel=balance.channel, period=following, now=opening)
    # The billing system hears of the period once its charges are final (and those
    # decided at once, auto-billed or settled at 0.00, were told as decided).
    period_closed_emit(period=period, now=now)


def _finalize(
    *,
    charge: OverageCharge,
    channel: Channel,
    following: BillingPeriod,
    opening: datetime,
    now: datetime,
) -> None:
    """Finalise a charge. Where the rule in force at the next period's opening says
    ``carry``, its overage first reduces the next period's included credits as far as
    they go; only the units not carried are charged, and the tenant is told both."""
    rule = effective_rule(tenant=following.tenant, channel=channel, at=opening)
    if not (channel.active and rule.carry_over == CarryOver.CARRY and charge.units > 0):
        overage_charge_finalize(charge=charge, now=now)
        return
    next_balance = balance_lock(
        tenant=following.tenant, channel=channel, period=following, now=opening
    )
    carried = credits_reduce_locked(
        balance=next_balance, units=charge.units, only_included=True, actor=None,
        reason=f"Overage of {charge.period.label} carried over",
        now=opening + timedelta(microseconds=1),
    )  # fmt: skip
    final = overage_charge_finalize(charge=charge, carried_units=carried, announce=False, now=now)
    overage_carried_notify(charge=final, next_period=following, now=now)
