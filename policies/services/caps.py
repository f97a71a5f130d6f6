"""Windowed caps of an authorization: a staff throttle of a channel or of the whole
tenant, and a ``restrict`` rule past the credits.

Each cap is a counter per tenant, cap and window (``WindowCounter``) taken with a
conditional ``UPDATE … SET units = units + q WHERE units + q <= cap``: atomic on its own,
so a whole-tenant cap holds across channels whose balances lock apart. Units released, or
reserved and not committed, go back to the counters they were taken from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

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


def window_start(*, at: datetime, window: str, tenant: Tenant) -> datetime:
    """Start of the hour (UTC) or of the tenant's local day that contains ``at``."""
    if window == Window.HOUR:
        return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    local = at.astimezone(tenant.tzinfo)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def caps_for(
    *, restrictions: list[Restriction], rule: Terms, channel: Channel, quantity: int,
    overage_part: int,
) -> list[Cap]:  # fmt: skip
    """The caps an authorization of ``quantity`` units must fit: every staff throttle in
    force, and the rule's cap for the part past the credits when the rule restricts."""
    caps = [
        Cap(key=f"restriction:{r.pk}", limit=r.limit_units or 0, window=r.window, units=quantity)
        for r in restrictions
        if r.kind == Restriction.Kind.THROTTLE
    ]
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
