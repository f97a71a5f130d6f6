"""Figures in the tenant's language: numbers, money, days, instants and periods.

Babel writes a no-break space (U+00A0) between a figure and its sign, so that a line
never breaks inside "80 %" or "29,00 €"."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from creditguard.locale_format import (
    count_formatter,
    day_text,
    instant_text,
    instant_texts,
    money_text,
    number_text,
    percent_text,
    period_text,
)

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(("language", "expected"), [("de", "1.234.567"), ("en", "1,234,567")])
def test_numbers_are_grouped_as_the_language_writes_them(language, expected):
    assert number_text(1234567, language=language) == expected


@pytest.mark.parametrize(("language", "expected"), [("de", "80\u00a0%"), ("en", "80%")])
def test_percent_is_given_in_whole_percent(language, expected):
    assert percent_text(80, language=language) == expected


@pytest.mark.parametrize(
    ("language", "amount", "exact", "expected"),
    [
        ("de", "29.00", False, "29,00\u00a0€"),
        ("en", "29.00", False, "€29.00"),
        ("de", "0.002", True, "0,002\u00a0€"),
        ("en", "0.002", True, "€0.002"),
        ("de", "0.080000", True, "0,08\u00a0€"),
        ("de", "1234.5", False, "1.234,50\u00a0€"),
        # The one rounding rule of CreditGuard (half up), not Babel's (half even).
        ("de", "0.125", False, "0,13\u00a0€"),
    ],
)
def test_money_is_written_in_the_locale_with_its_currency(language, amount, exact, expected):
    assert money_text(Decimal(amount), "EUR", language=language, exact=exact) == expected


def test_a_currency_without_minor_unit_has_no_decimals():
    assert money_text(Decimal("1500"), "JPY", language="de") == "1.500\u00a0¥"


@pytest.mark.parametrize(
    ("language", "expected"), [("de", "25. November 2026"), ("en", "25 November 2026")]
)
def test_days_are_written_out(language, expected):
    assert day_text(date(2026, 11, 25), language=language) == expected
    assert day_text("2026-11-25", language=language) == expected


@pytest.mark.parametrize(
    ("language", "expected"),
    [("de", "25. November 2026, 15:00 MEZ"), ("en", "25 November 2026, 15:00 CET")],
)
def test_an_instant_has_its_time_in_the_tenants_zone(language, expected):
    instant = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    assert instant_text(instant, language=language, tz=BERLIN) == expected
    assert instant_text(instant.isoformat(), language=language, tz=BERLIN) == expected


def test_a_local_midnight_may_be_written_as_its_day():
    midnight = datetime(2026, 12, 1, tzinfo=BERLIN)
    assert instant_text(midnight, language="de", tz=BERLIN, midnight_as_day=True) == (
        "1. Dezember 2026"
    )
    assert instant_text(midnight, language="de", tz=BERLIN) == "1. Dezember 2026, 00:00 MEZ"
    # Midnight in UTC is not midnight in Berlin: the time stays.
    utc_midnight = datetime(2026, 12, 1, tzinfo=UTC)
    assert instant_text(utc_midnight, language="de", tz=BERLIN, midnight_as_day=True) == (
        "1. Dezember 2026, 01:00 MEZ"
    )


@pytest.mark.parametrize(("language", "expected"), [("de", "März 2026"), ("en", "March 2026")])
def test_a_period_label_is_its_month(language, expected):
    assert period_text("2026-03", language=language) == expected
    assert period_text("not a label", language=language) == "not a label"


@pytest.mark.parametrize("language", ["de", "en"])
def test_the_count_formatter_writes_whole_numbers_as_number_text(language):
    text = count_formatter(language=language)
    for value in (0, 7, 999, 1000, 1815, 62916, 1234567, -1500, 10**12):
        assert text(value) == number_text(value, language=language)


@pytest.mark.parametrize("language", ["en", "de"])
def test_many_instants_read_as_each_one_alone(language):
    # Every hour of October 2026 in Berlin, the repeated 02:00 of the DST change included.
    start = datetime(2026, 9, 30, 22, tzinfo=UTC)
    hours = [start + timedelta(hours=n) for n in range(745)]
    assert instant_texts(hours, language=language, tz=BERLIN) == [
        instant_text(hour, language=language, tz=BERLIN) for hour in hours
    ]
