"""How full a balance is: the one definition of "percent used" and of "near a limit",
for the balances API, the evaluation's warnings and the staff console alike."""

from __future__ import annotations

import math

from django.db.models import F, Q
from django.db.models.lookups import GreaterThanOrEqual

# At or above this share of the available credits a balance is "near its limit": its
# status says so, the console filters on it, and a warning from here carries a top-up offer.
NEAR_LIMIT_PERCENT = 80


def usage_level(*, used: int, available: int) -> float:
    """Percent of the available credits used (not rounded). With nothing available it is
    0 if nothing was used and infinite otherwise: past every warning threshold."""
    if available > 0:
        return 100 * used / available
    return math.inf if used > 0 else 0.0


def usage_percent(*, used: int, available: int) -> int | None:
    """``usage_level`` rounded to a whole percent for display; None when nothing is
    available (a percentage of nothing has no figure)."""
    if available <= 0:
        return None
    return round(usage_level(used=used, available=available))


def near_limit_q(*, used: str = "used", available: str = "available") -> Q:
    """``usage_level >= NEAR_LIMIT_PERCENT`` as a query condition on a balance's fields:
    past the limit included, and any use of nothing available. Compared as
    ``100 × used >= NEAR_LIMIT_PERCENT × available``, in whole numbers, so that no
    division rounds the mark."""
    return Q(
        GreaterThanOrEqual(F(used) * 100, F(available) * NEAR_LIMIT_PERCENT),
        **{f"{used}__gt": 0},
    )
