"""Figures in the person's language and the tenant's time zone
(``creditguard.locale_format``): ``{% number n %}``, ``{% money amount currency %}``,
``{% percent p %}``, ``{% day moment %}``, ``{% last_day end %}``,
``{% instant moment %}``, ``{% channel_name channel %}``."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django import template
from django.utils import timezone
from django.utils.translation import get_language

from creditguard.locale_format import (
    day_text,
    instant_text,
    money_text,
    number_text,
    percent_text,
)
from portal import deliveries

register = template.Library()


def _language() -> str:
    return (get_language() or "en")[:2]


def _tz(context: template.Context) -> Any:
    tenant = context.get("tenant")
    return tenant.tzinfo if tenant is not None else timezone.get_current_timezone()


@register.simple_tag
def number(value: int | Decimal | None) -> str:
    return "" if value is None else number_text(value, language=_language())


@register.simple_tag
def percent(value: int | float | None) -> str:
    """A whole percentage ("91%" / "91 %")."""
    return "" if value is None else percent_text(value, language=_language())


@register.simple_tag
def money(amount: Decimal | str | None, currency: str, exact: bool = False) -> str:
    if amount is None:
        return ""
    return money_text(amount, currency, language=_language(), exact=exact)


@register.simple_tag(takes_context=True)
def day(context: template.Context, value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(_tz(context)).date()
    return day_text(value, language=_language())


@register.simple_tag(takes_context=True)
def last_day(context: template.Context, end: datetime) -> str:
    """The last day of a span that ends (exclusively) at ``end``: a period ending at
    midnight on 1 December ends on 30 November."""
    return day_text(
        (end.astimezone(_tz(context)) - timedelta(microseconds=1)).date(), language=_language()
    )


@register.simple_tag(takes_context=True)
def instant(context: template.Context, value: datetime | None) -> str:
    if value is None:
        return ""
    return instant_text(value, language=_language(), tz=_tz(context))


@register.simple_tag
def channel_name(channel: Any) -> str:
    return str(channel.labels().get(_language(), {}).get("name") or channel.name)


@register.simple_tag
def channel_unit(channel: Any) -> str:
    return str(channel.labels().get(_language(), {}).get("unit") or channel.unit)


@register.filter
def kind_label(kind: str) -> str:
    """A notification kind (a webhook event's) by its translated label, not its code."""
    return deliveries.kind_label(kind)


@register.filter
def kind_labels(kinds: list[str]) -> str:
    return ", ".join(kind_label(kind) for kind in kinds)


@register.filter
def delivery_failure(error: str) -> str:
    """Why a delivery failed, in a translated sentence (``portal.deliveries``)."""
    return deliveries.failure_text(error)


@register.filter
def disabled_reason(reason: str) -> str:
    return deliveries.disabled_reason_text(reason)
