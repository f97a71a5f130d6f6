"""The console's formats (``console.formats``) as template filters."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django import template

from console.formats import count_text, staff_day, staff_instant, staff_money

register = template.Library()


@register.filter
def count(value: int | None) -> str:
    return count_text(value)


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    return staff_money(amount, currency)


@register.filter
def instant(value: datetime | None) -> str:
    return staff_instant(value)


@register.filter
def day(value: datetime | None) -> str:
    return staff_day(value)
