"""Numbers, money, dates and times as a tenant's language writes them (Babel, CLDR data).

Every customer-facing text formats its figures here, so that a German tenant reads
"1.815", "29,00 €", "0,002 €" and "25. November 2026, 14:00 MEZ" and an English one
"1,815", "€29.00", "€0.002" and "25 November 2026, 14:00 CET". English is British
English: CreditGuard's tenants are European (euro prices, European time zones), and
British English writes the day before the month as German does. Instants are shown in
the tenant's time zone, with its abbreviation, since a throttle that ends in two hours
must say at what time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, tzinfo
from decimal import Decimal

from babel.dates import (
    format_date,
    format_skeleton,
    format_time,
    get_datetime_format,
    get_time_format,
)
from babel.numbers import (
    format_currency,
    format_decimal,
    format_percent,
    get_group_symbol,
    get_minus_sign_symbol,
)

from creditguard.money import round_money

# A tenant's language (Tenant.Language) → the CLDR locale its texts are formatted in.
LOCALES = {"de": "de_DE", "en": "en_GB"}
_FALLBACK = "en_GB"

Number = int | Decimal | str


def locale_of(language: str) -> str:
    return LOCALES.get(language, _FALLBACK)


def _decimal(value: Number | float) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def number_text(value: Number, *, language: str) -> str:
    """A count or quantity with the locale's grouping and decimal sign (1.815 / 1,815)."""
    return format_decimal(_decimal(value), locale=locale_of(language))


def count_formatter(*, language: str) -> Callable[[int], str]:
    """``number_text`` for whole numbers, as one function for the thousands of figures of
    a chart: the locale's group and minus signs on Python's grouping by thousands, which is
    how both locales group (Babel, figure by figure, is some fifty times slower)."""
    locale = locale_of(language)
    group, minus = get_group_symbol(locale), get_minus_sign_symbol(locale)

    def text(value: int) -> str:
        return f"{value:,}".replace(",", "\0").replace("-", minus).replace("\0", group)

    return text


def percent_text(percent: Number | float, *, language: str) -> str:
    """A percentage given in whole percent (80 → "80 %" in German, "80%" in English)."""
    return format_percent(_decimal(percent) / 100, locale=locale_of(language))


def money_text(amount: Number, currency: str, *, language: str, exact: bool = False) -> str:
    """An amount in its currency ("29,00 €", "€29.00"). Rounded to the currency's minor
    unit by CreditGuard's one rule (``round_money``); with ``exact`` — a unit price such
    as 0.002 — every significant decimal is kept, never fewer than the minor unit."""
    value = _decimal(amount)
    if exact:
        return format_currency(
            value.normalize(), currency, locale=locale_of(language), decimal_quantization=False
        )
    return format_currency(round_money(value, currency), currency, locale=locale_of(language))


def _instant(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def day_text(value: date | str, *, language: str) -> str:
    """A calendar day in words ("25. November 2026" / "25 November 2026"). A string is
    an ISO date; of an ISO date-time only the date is read."""
    day = date.fromisoformat(value[:10]) if isinstance(value, str) else value
    return format_date(day, "long", locale=locale_of(language))


def short_day_text(value: date, *, language: str) -> str:
    """A day as a chart's axis writes it, month abbreviated, no year ("1. Nov." / "1 Nov")."""
    return format_skeleton("MMMd", value, locale=locale_of(language))


def instant_text(
    value: datetime | str, *, language: str, tz: tzinfo, midnight_as_day: bool = False
) -> str:
    """An instant as day, time and zone in ``tz`` ("25. November 2026, 14:00 MEZ"). With
    ``midnight_as_day``, an instant at local midnight is its day alone — "from 1 December"
    says it exactly; an end ("until …") keeps the time, which says which midnight."""
    moment = _instant(value).astimezone(tz)
    locale = locale_of(language)
    day = format_date(moment.date(), "long", locale=locale)
    if midnight_as_day and moment.timetz().replace(tzinfo=None) == time(0):
        return day
    clock = format_time(
        moment, f"{get_time_format('short', locale=locale).pattern} z", tzinfo=tz, locale=locale
    )
    # CLDR's pattern joining a day and a time, "{1}, {0}" in both languages.
    return str(get_datetime_format("long", locale=locale)).format(clock, day)


def instant_texts(values: list[datetime], *, language: str, tz: tzinfo) -> list[str]:
    """``instant_text`` of many instants (a chart's hours) at once, equal to it one by one:
    each day's words and each clock reading (hour, minute, zone name) are formatted once,
    so a month by hour asks Babel some 80 times rather than 1,500."""
    locale = locale_of(language)
    pattern = f"{get_time_format('short', locale=locale).pattern} z"
    joined = str(get_datetime_format("long", locale=locale))
    days: dict[date, str] = {}
    clocks: dict[tuple[int, int, str | None], str] = {}
    texts: list[str] = []
    for value in values:
        moment = value.astimezone(tz)
        day = days.get(moment.date())
        if day is None:
            day = days[moment.date()] = format_date(moment.date(), "long", locale=locale)
        key = (moment.hour, moment.minute, moment.tzname())
        clock = clocks.get(key)
        if clock is None:
            clock = clocks[key] = format_time(moment, pattern, tzinfo=tz, locale=locale)
        texts.append(joined.format(clock, day))
    return texts


def period_text(label: str, *, language: str) -> str:
    """A billing period's label (``YYYY-MM``) as month and year ("November 2026"); a label
    of another shape is returned as it is."""
    try:
        first = date.fromisoformat(f"{label}-01")
    except ValueError:
        return label
    return format_date(first, "LLLL y", locale=locale_of(language))
