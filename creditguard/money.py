"""Money: Decimal amounts in a currency, with the one rounding rule of CreditGuard.

Amounts are computed at full precision and rounded once, at the end, to the
currency's minor unit with ROUND_HALF_UP (commercial rounding).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 minor units of the currencies whose minor unit is not 2.
_MINOR_UNITS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "JOD": 3, "TND": 3}


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency.upper(), 2)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half up."""
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exponent, rounding=ROUND_HALF_UP)


def unit_price_text(value: Decimal) -> str:
    """A per-unit price as people write it: at least two decimals, no trailing zeros
    beyond (0.080000 → 0.08, 0.0125 → 0.0125)."""
    text = format(value.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"
