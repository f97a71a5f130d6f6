"""What a notification says, in the tenant's language (German and English)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.utils import formats, translation
from django.utils.translation import gettext as _

from notifications.models import Notification


@dataclass(frozen=True)
class Message:
    subject: str
    lines: list[str]
    offer: str | None
    dashboard_url: str
    policy_url: str
    support: str


def _day(value: str | None) -> str:
    if not value:
        return ""
    return formats.date_format(
        date.fromisoformat(value[:10]), "j. F Y" if translation.get_language() == "de" else "j F Y"
    )


def render_message(notification: Notification, *, language: str) -> Message:
    """Subject and lines of a notification, with the current figures and offer."""
    p: dict[str, Any] = notification.payload
    with translation.override(language):
        figures = {
            "channel": p.get("channel_name", p.get("channel", "")),
            "used": formats.number_format(p.get("used", 0), force_grouping=True),
            "available": formats.number_format(p.get("available", 0), force_grouping=True),
            "unit": p.get("unit", ""),
            "percent": p.get("percent", 0),
            "threshold": p.get("threshold", 0),
            "period": p.get("period", ""),
            "date": _day(p.get("limit_reached_on")),
            "overage": formats.number_format(p.get("overage_units", 0), force_grouping=True),
        }
        kind = notification.kind
        K = Notification.Kind
        if kind == K.THRESHOLD_WARNING:
            subject = _("%(channel)s: %(threshold)s%% of your included credits used") % figures
            lines = [
                _("You have used %(used)s of %(available)s included %(unit)s units on %(channel)s "
                  "in %(period)s (%(percent)s%%).") % figures,
            ]  # fmt: skip
            if figures["date"]:
                lines.append(_("At this rate you reach your limit on %(date)s.") % figures)
        elif kind == K.FORECAST_WARNING:
            subject = _("%(channel)s: at this rate you reach your limit on %(date)s") % figures
            lines = [
                _("You have used %(used)s of %(available)s included %(unit)s units on %(channel)s "
                  "in %(period)s (%(percent)s%%).") % figures,
                _("At this rate you reach your limit on %(date)s.") % figures,
            ]  # fmt: skip
        elif kind == K.LIMIT_REACHED:
            subject = _("%(channel)s: you have reached your included credits") % figures
            lines = [
                _("You have used %(used)s of %(available)s included %(unit)s units on %(channel)s "
                  "in %(period)s (%(percent)s%%).") % figures,
                _("Further use may be charged, restricted or suspended as the fair use policy "
                  "describes.")
            ]  # fmt: skip
        elif kind == K.OVERAGE_FEE_NOTICE:
            subject = _("%(channel)s: fees may apply to use beyond your credits") % figures
            lines = [
                _("You have used %(overage)s %(unit)s units beyond your included credits on "
                  "%(channel)s in %(period)s. Fees may apply.") % figures
            ]  # fmt: skip
        else:
            subject = p.get("subject") or Notification.Kind(kind).label
            lines = [str(line) for line in p.get("lines", [])]
        offer = None
        if p.get("offer"):
            o = p["offer"]
            offer = _("Top up %(units)s units for %(price)s %(currency)s so that your service "
                      "is not interrupted; accept the offer in your dashboard.") % {
                "units": formats.number_format(o["units"], force_grouping=True),
                "price": o["price"],
                "currency": o["currency"],
            }  # fmt: skip
        base = settings.PUBLIC_BASE_URL.rstrip("/")
        return Message(
            subject=str(subject),
            lines=[str(line) for line in lines],
            offer=offer,
            dashboard_url=f"{base}/dashboard/",
            policy_url=f"{base}/policy/",
            support=settings.SUPPORT_CONTACT,
        )
