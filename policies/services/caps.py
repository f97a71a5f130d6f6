"""Windowed caps of an authorization: a staff throttle of a channel or of the whole
tenant, and a ``restrict`` rule past the credits.

Each cap is a counter per tenant, cap and window (``WindowCounter``) taken with a
conditional ``UPDATE … SET units = units + q WHERE units + q <= cap``: atomic on its own,
so a whole-tenant cap holds across channels whose balances lock apart. Units released, or
reserved and not committed, go back to the counters they were taken from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django.db.models import F
from django.db.models.functions import Greatest

from metering.models import Channel, WindowCounter
from policies.models import Action, Restriction, Window
from policies.terms import Terms
from tenants.models import Tenant


@dataclass(frozen=True)
class Cap:
    key: str
    limit: int
    window: str
    units: int
    # A staff throttle's end (None: until lifted); a rule's cap has none.
    ends_at: datetime | None = None
    restriction: bool = False


def window_start(*, at: datetime, window: str, tenant: Tenant) -> datetime:
    """Start of the hour (UTC) or of the tenant's local day that contains ``at``."""
    if window == Window.HOUR:
        return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    local = at.astimezone(tenant.tzinfo)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def window_end(*, at: datetime, window: str, tenant: Tenant) -> datetime:
    """End of the hour (UTC) or of the tenant's local day that contains ``at``: the next
    window's start, when a cap's count starts again from 0 (a day of 23 or 25 hours on
    a DST change ends at the local midnight all the same)."""
    if window == Window.HOUR:
        return window_start(at=at, window=window, tenant=tenant) + timedelta(hours=1)
    zone = tenant.tzinfo
    tomorrow = at.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(0), tzinfo=zone).astimezone(UTC)


def cap_retry_at(*, tenant: Tenant, cap: Cap, now: datetime) -> datetime | None:
    """When an authorization that ``cap`` refused at ``now`` can be allowed by it: the
    next window (its count starts again from 0), or a throttle's end if that comes
    first. A request larger than the cap itself fits no window: then only the
    throttle's end helps, and a rule's cap never does (None: ask for fewer units)."""
    ends_at = cap.ends_at if cap.restriction else None
    if cap.units > cap.limit:
        return ends_at
    next_window = window_end(at=now, window=cap.window, tenant=tenant)
    return min(next_window, ends_at) if ends_at is not None else next_window


def caps_retry_at(*, tenant: Tenant, refused: list[Cap], now: datetime) -> datetime | None:
    """When the caps of a refused authorization can all allow it: ``refused`` is the cap
    that refused it followed by those not tried yet, each of which, if it has no room
    now either, must wait too (one query per untried cap). None when one never frees."""
    first, untried = refused[0], refused[1:]
    waits = [cap_retry_at(tenant=tenant, cap=first, now=now)]
    for cap in untried:
        start = window_start(at=now, window=cap.window, tenant=tenant)
        counted = (
            WindowCounter.objects.filter(tenant=tenant, key=cap.key, window_start=start)
            .values_list("units", flat=True)
            .first()
        ) or 0
        if counted + cap.units > cap.limit:
            waits.append(cap_retry_at(tenant=tenant, cap=cap, now=now))
    return None if None in waits else max(w for w in waits if w is not None)


def caps_for(
    *, restrictions: list[Restriction], rule: Terms, channel: Channel, quantity: int,
    overage_part: int,
) -> list[Cap]:  # fmt: skip
    """The caps an authorization of ``quantity`` units must fit: every staff throttle in
    force, and the rule's cap for the part past the credits when the rule restricts."""
    caps = [
        Cap(key=f"restriction:{r.pk}", limit=r.limit_units or 0, window=r.window, units=quantity,
            ends_at=r.ends_at, restriction=True)
        for r in restrictions
        if r.kind == Restriction.Kind.THROTTLE
    ]  # fmt: skip
    if overage_part > 0 and rule.action == Action.RESTRICT:
        caps.append(
            Cap(
                key=f"rule:{channel.pk}",
                limit=rule.restrict_units or 0,
                window=rule.restrict_window or Window.DAY,
                units=overage_part,
            )
        )
    return caps


def cap_take(*, tenant: Tenant, cap: Cap, now: datetime) -> int | None:
    """Count ``cap.units`` in the current window if the cap allows; the counter's id, or
    None."""
    start = window_start(at=now, window=cap.window, tenant=tenant)
    counter, _ = WindowCounter.objects.get_or_create(tenant=tenant, key=cap.key, window_start=start)
    taken = WindowCounter.objects.filter(pk=counter.pk, units__lte=cap.limit - cap.units).update(
        units=F("units") + cap.units
    )
    return counter.pk if taken else None


def caps_give_back(window_counts: list[list[int]], units: int) -> None:
    """Return up to ``units`` to the counters an authorization took from."""
    for counter_id, counted in window_counts:
        amount = min(counted, units)
        if amount > 0:
            WindowCounter.objects.filter(pk=counter_id).update(
                units=Greatest(F("units") - amount, 0)
            )
