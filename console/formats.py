"""How the staff console writes figures, money and instants, one way on every page.

Staff read English: counts grouped by thousands ("4,000"), money as the English locale
writes it (``creditguard.locale_format.money_text``: "€31.59"), and every instant in the
console's one zone, ``settings.TIME_ZONE``, with its zone label ("2026-11-25 14:00 UTC")
— not the tenant's: a list mixing tenants of several zones stays comparable row by row.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings

from creditguard.locale_format import money_text

STAFF_LANGUAGE = "en"


def count_text(value: int | None) -> str:
    """A whole number grouped by thousands ("4,000"); None as a dash."""
    return "—" if value is None else f"{value:,}"


def staff_money(amount: Decimal | int | str | None, currency: str) -> str:
    """An amount as the console writes money ("€31.59"); None as a dash."""
    return "—" if amount is None else money_text(amount, currency, language=STAFF_LANGUAGE)


def staff_instant(value: datetime | None) -> str:
    """An instant in the console's zone with its label ("2026-11-25 14:00 UTC")."""
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(settings.TIME_ZONE)).strftime("%Y-%m-%d %H:%M %Z")


def staff_day(value: datetime | None) -> str:
    """The day of an instant in the console's zone ("2026-11-25")."""
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(settings.TIME_ZONE)).strftime("%Y-%m-%d")
