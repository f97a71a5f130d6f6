"""Which grants usage draws from, and which a reduction takes from: pure planning.

Nothing here reads or writes the database; ``metering.services.ledger`` plans with
these functions and then writes the entries and moves the balance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from metering.models import Grant

_NEVER = datetime.max.replace(tzinfo=UTC)


def draw_order_key(grant: Grant) -> tuple[bool, datetime, int, datetime, int]:
    """The draw order: soonest expiry first (never last), then lowest priority, then oldest."""
    return (
        grant.expires_at is None,
        grant.expires_at or _NEVER,
        grant.priority,
        grant.created_at,
        grant.pk,
    )


def grant_is_drawable(grant: Grant, now: datetime) -> bool:
    return (
        grant.expired_at is None
        and (grant.expires_at is None or grant.expires_at > now)
        and grant.undrawn_units > 0
    )


@dataclass(frozen=True)
class Draw:
    grant: Grant | None  # None: beyond every grant (overage)
    units: int


def draw_plan(grants: Iterable[Grant], units: int, now: datetime) -> list[Draw]:
    """Which grants ``units`` of usage draw from, in draw order. Pure."""
    plan: list[Draw] = []
    left = units
    for grant in sorted((g for g in grants if grant_is_drawable(g, now)), key=draw_order_key):
        if left == 0:
            break
        take = min(left, grant.undrawn_units)
        plan.append(Draw(grant=grant, units=take))
        left -= take
    if left:
        plan.append(Draw(grant=None, units=left))
    return plan


def reduction_plan(grants: Iterable[Grant], units: int, now: datetime) -> list[Draw]:
    """Which grants a reduction takes undrawn units from: included credits first,
    then the others in reverse draw order (what would be used last goes first)."""
    drawable = [g for g in grants if grant_is_drawable(g, now)]
    included = sorted(
        (g for g in drawable if g.kind == Grant.Kind.INCLUDED), key=draw_order_key, reverse=True
    )
    others = sorted(
        (g for g in drawable if g.kind != Grant.Kind.INCLUDED), key=draw_order_key, reverse=True
    )
    plan: list[Draw] = []
    left = units
    for grant in included + others:
        if left == 0:
            break
        take = min(left, grant.undrawn_units)
        plan.append(Draw(grant=grant, units=take))
        left -= take
    return plan
