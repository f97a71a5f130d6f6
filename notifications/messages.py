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
                _past_limit(p),
            ]  # fmt: skip
        elif kind == K.OVERAGE_FEE_NOTICE:
            subject = _("%(channel)s: fees may apply to use beyond your credits") % figures
            lines = [
                _("You have used %(overage)s %(unit)s units beyond your included credits on "
                  "%(channel)s in %(period)s. Fees may apply.") % figures
            ]  # fmt: skip
        elif kind == K.RESTRICTION_APPLIED:
            scope = figures["channel"] or _("all channels")
            if p.get("kind") == "suspend":
                subject = _("%(scope)s: sending is suspended") % {"scope": scope}
            else:
                subject = _("%(scope)s: sending is limited") % {"scope": scope}
            lines = [_restriction_line(p, scope)]
            if p.get("reason"):
                lines.append(_("Reason: %(reason)s") % {"reason": p["reason"]})
        elif kind == K.RESTRICTION_LIFTED:
            scope = figures["channel"] or _("all channels")
            subject = _("%(scope)s: the restriction has been lifted") % {"scope": scope}
            lines = [_("You can send on %(scope)s again as usual.") % {"scope": scope}]
        elif kind == K.TOPUP_BOOKED:
            subject = _("%(channel)s: top-up booked") % figures
            lines = [
                _("%(units)s units were added to your %(channel)s credits for %(price)s "
                  "%(currency)s.") % {**figures, "units": p.get("units"), "price": p.get("price"),
                                      "currency": p.get("currency")}
            ]  # fmt: skip
        elif kind == K.TOPUP_OFFER:
            subject = _("%(channel)s: an offer to top up your credits") % figures
            lines = []
        elif kind == K.LIMIT_CHANGED:
            subject = _("%(channel)s: your limit changes") % figures
            lines = [
                _("From %(date)s your %(channel)s credits are %(included)s %(unit)s units per "
                  "period (before: %(before)s).") % {
                    **figures,
                    "date": _day(p.get("effective_from")),
                    "included": _number(p.get("included_units", 0)),
                    "before": _number(p.get("before_included_units", 0)),
                },
                _past_limit(p),
            ]  # fmt: skip
        elif kind == K.FEE_SCHEDULE_NOTICE:
            subject = _("%(channel)s: fees for use beyond your credits") % figures
            lines = [
                _("From %(date)s, use beyond your included %(channel)s credits is charged:") % {
                    **figures, "date": _day(p.get("effective_from"))},
                *[_tier_line(tier, p.get("currency", "")) for tier in p.get("tiers", [])],
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


def _number(value: Any) -> str:
    return str(formats.number_format(value, force_grouping=True))


def _past_limit(p: dict[str, Any]) -> str:
    """What happens past the included credits, by the rule's action (policy § 5)."""
    action = p.get("action_past_limit")
    if action == "charge_overage":
        return _("Further use is charged per unit as your fee schedule sets out.")
    if action == "restrict":
        return _("Further use is limited to %(units)s units per %(window)s.") % {
            "units": p.get("restrict_units"),
            "window": _("hour") if p.get("restrict_window") == "hour" else _("day"),
        }
    if action == "suspend":
        return _("Sending on this channel is suspended until your credits reset or you top up.")
    return _("Further use may be charged; we will tell you before we bill it.")


def _restriction_line(p: dict[str, Any], scope: str) -> str:
    until = _day(p.get("ends_at")) or _("further notice")
    if p.get("kind") == "suspend":
        return _("Sending on %(scope)s is suspended until %(until)s.") % {
            "scope": scope,
            "until": until,
        }
    return _(
        "Sending on %(scope)s is limited to %(units)s units per %(window)s until %(until)s."
    ) % {
        "scope": scope,
        "units": p.get("limit_units"),
        "window": _("hour") if p.get("window") == "hour" else _("day"),
        "until": until,
    }


def _tier_line(tier: list[Any], currency: str) -> str:
    up_to, price = tier
    if up_to is None:
        return _("beyond that: %(price)s %(currency)s per unit") % {
            "price": price,
            "currency": currency,
        }
    return _("up to %(up_to)s units: %(price)s %(currency)s per unit") % {
        "up_to": formats.number_format(up_to, force_grouping=True),
        "price": price,
        "currency": currency,
    }
