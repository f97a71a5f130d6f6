"""The sentences of the notification kinds that need more than a line, in the tenant's
language: limit changes, restrictions, fee schedules, offers, the welcome, overage carried
and decided, limit requests. ``notifications.messages`` picks them by kind."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.translation import gettext as _

from creditguard.locale_format import (
    percent_text,
    period_text,
)
from notifications.models import Notification
from notifications.writer import UNREADABLE, Writer

K = Notification.Kind


def usage_line(figures: dict[str, str]) -> str:
    return _("You have used %(used)s of %(available)s included units on %(channel)s in "
             "%(period)s (%(percent)s; unit: %(unit)s).") % figures  # fmt: skip


def limit_changes(w: Writer, figures: dict[str, str]) -> list[str]:
    """Each term that changes, before and after, and from when; payloads from before they
    listed the changes say the included credits and the action past them."""
    changes = w.p.get("changes")
    if not isinstance(changes, list) or not changes:
        return [
            _("From %(date)s, your %(channel)s credits are %(included)s units per period "
              "(before: %(before)s; unit: %(unit)s).") % {
                **figures,
                "date": w.effective("effective_from"),
                "included": w.number("included_units"),
                "before": w.number("before_included_units"),
            },
            past_limit(w),
        ]  # fmt: skip
    lines = []
    for change in changes:
        if not isinstance(change, dict):
            continue
        line = _limit_change(w, figures, change)
        if line and line not in lines:
            lines.append(line)
    if w.p.get("enforcement") and w.p.get("customer_reason"):
        lines.append(
            _("This change applies at once as a measure under the fair use policy: %(reason)s")
            % {"reason": w.p["customer_reason"]}
        )
    return lines


def _limit_change(w: Writer, figures: dict[str, str], change: dict[str, Any]) -> str:
    term, before, after = change.get("term"), change.get("before"), change.get("after")
    date = w.instant(change.get("effective_from"), midnight_as_day=True) or w.effective(
        "effective_from"
    )
    if term == "included_units":
        values = {**figures, "date": date, "included": w.number_of(after),
                  "before": w.number_of(before)}  # fmt: skip
        return _("From %(date)s, your %(channel)s credits are %(included)s units per period "
                 "(before: %(before)s; unit: %(unit)s).") % values  # fmt: skip
    if term == "hard_limit":
        values = {
            "date": date,
            "after": w.number_of(after),
            "before": _("no ceiling") if before is None else w.number_of(before),
        }
        if after is None:
            return _("From %(date)s, there is no ceiling on use beyond your credits "
                     "(before: %(before)s).") % values  # fmt: skip
        return _("From %(date)s, at most %(after)s units beyond your credits can be used "
                 "(before: %(before)s).") % values  # fmt: skip
    if term in ("action", "restrict_units", "restrict_window"):
        return _("From %(date)s: %(rule)s") % {"date": date, "rule": past_limit(w)}
    if term == "warning_thresholds" and isinstance(after, list):
        return _("From %(date)s, we warn you at %(percents)s of your credits.") % {
            "date": date,
            "percents": ", ".join(_percent(w, value) for value in after),
        }
    if term == "carry_over":
        if after == "carry":
            return _("From %(date)s, use beyond your credits is carried into the next "
                     "period.") % {"date": date}  # fmt: skip
        return _("From %(date)s, use beyond your credits is no longer carried into the next "
                 "period.") % {"date": date}  # fmt: skip
    return ""


def _percent(w: Writer, value: Any) -> str:
    try:
        return percent_text(value, language=w.language)
    except UNREADABLE:
        return str(value)


def past_limit(w: Writer) -> str:
    """What happens past the included credits, by the rule's action (policy § 5)."""
    return past_limit_sentence(
        action=str(w.p.get("action_past_limit") or ""),
        units=w.number("restrict_units"),
        window=w.p.get("restrict_window"),
    )


def past_limit_sentence(*, action: str, units: str, window: Any) -> str:
    """The sentence for a rule's action, ``units`` already written for the language; the
    portal's overview says it with the same words as the e-mails."""
    if action == "charge_overage":
        return _("Further use is charged per unit as your fee schedule sets out.")
    if action == "restrict":
        return _("Further use is limited to %(units)s units per %(window)s.") % {
            "units": units,
            "window": _window(window),
        }
    if action == "suspend":
        return _("Sending on this channel is suspended until your credits reset or you top up.")
    return _("Further use may be charged; we will tell you before we bill it.")


def _window(window: Any) -> str:
    return _("hour") if window == "hour" else _("day")


def restriction(kind: str, w: Writer) -> tuple[str, list[str]]:
    p = w.p
    named = bool(p.get("channel"))
    scope = w.label("name") if named else _("all channels")
    title = {"scope": w.label("name") if named else _("All channels")}
    if kind == K.RESTRICTION_LIFTED:
        # Lifted by staff or ended by time ("ended": "expired"), and since when; payloads
        # from before they said when carry neither.
        subject = (
            _("%(scope)s: the restriction has ended")
            if p.get("ended") == "expired"
            else _("%(scope)s: the restriction has been lifted")
        )
        if when := w.instant(p.get("ended_at")):
            line = _("Since %(when)s, you can send on %(scope)s again as usual.") % {
                "scope": scope,
                "when": when,
            }
        else:
            line = _("You can send on %(scope)s again as usual.") % {"scope": scope}
        return subject % title, [line]
    figures = {
        "scope": scope,
        "units": w.number("limit_units"),
        "window": _window(p.get("window")),
        "until": w.instant(p.get("ends_at")),
    }
    suspended = p.get("kind") == "suspend"
    if suspended and figures["until"]:
        line = _("Sending on %(scope)s is suspended until %(until)s.") % figures
    elif suspended:
        line = _("Sending on %(scope)s is suspended until further notice.") % figures
    elif figures["until"]:
        line = _("Sending on %(scope)s is limited to %(units)s units per %(window)s until "
                 "%(until)s.") % figures  # fmt: skip
    else:
        line = _("Sending on %(scope)s is limited to %(units)s units per %(window)s until "
                 "further notice.") % figures  # fmt: skip
    lines = [line]
    if p.get("reason"):
        lines.append(_("Reason: %(reason)s") % {"reason": p["reason"]})
    if suspended:
        return _("%(scope)s: sending is suspended") % title, lines
    return _("%(scope)s: sending is limited") % title, lines


def fee_schedule(w: Writer, figures: dict[str, str]) -> tuple[str, list[str]]:
    p = w.p
    currency = str(p.get("currency", ""))
    lines = [
        _("From %(date)s, use beyond your included %(channel)s credits is charged:")
        % {**figures, "date": w.effective("effective_from")}
    ]
    for up_to, price in p.get("tiers", []):
        tier = {"price": w.money(price, currency, exact=True)}
        if up_to is None:
            lines.append(_("beyond that: %(price)s per unit") % tier)
        else:
            lines.append(
                _("up to %(up_to)s units: %(price)s per unit")
                % {**tier, "up_to": w.number_of(up_to)}
            )
    if p.get("mode") == "volume":
        lines.append(_("The tier your use in a period reaches prices all its units."))
    elif p.get("mode") == "graduated":
        lines.append(_("Each tier prices the units within it."))
    return _("%(channel)s: fees for use beyond your credits") % figures, lines


def offer(w: Writer) -> str:
    offer = w.p["offer"]
    figures = {
        "units": w.number_of(offer.get("units")),
        "price": w.money(offer.get("price", 0), str(offer.get("currency", ""))),
        "until": w.instant(offer.get("expires_at")),
    }
    if figures["until"]:
        return _("Top up %(units)s units for %(price)s so that your service is not "
                 "interrupted: accept the offer on your Overview page; it is valid until "
                 "%(until)s.") % figures  # fmt: skip
    return _("Top up %(units)s units for %(price)s so that your service is not interrupted: "
             "accept the offer on your Overview page.") % figures  # fmt: skip


def welcome(w: Writer) -> tuple[str, list[str]]:
    """A new tenant's terms per channel and the fees that apply: its notice of them."""
    lines = []
    for entry in w.p.get("channels", []):
        channel = replace(w, p=entry)
        names = {"channel": channel.label("name"), "unit": channel.label("unit")}
        hard_limit = entry.get("hard_limit")
        if hard_limit is None:
            ceiling = _("no hard ceiling")
        elif hard_limit == 0:
            ceiling = _("no use beyond your credits")
        else:
            ceiling = _("at most %(units)s units beyond your credits") % {
                "units": channel.number("hard_limit")
            }
        lines.append(
            _("%(channel)s: %(included)s units included per period (unit: %(unit)s); "
              "%(ceiling)s.") % {**names, "included": channel.number("included_units"),
                                 "ceiling": ceiling}
        )  # fmt: skip
        lines.append(past_limit(channel))
        if entry.get("carry_over") == "carry":
            lines.append(_("Use beyond your credits is carried over: it reduces your included "
                           "credits of the next period."))  # fmt: skip
        for schedule in entry.get("fee_schedules", []):
            lines.extend(fee_schedule(replace(w, p={**entry, **schedule}), names)[1])
        if not entry.get("fee_schedules"):
            lines.append(_("No fee schedule applies to %(channel)s.") % names)
    lines.append(_("This message is your notice of these fees: they apply only from the dates "
                   "given."))  # fmt: skip
    return _("Welcome: your terms and fees"), lines


def overage_carried(w: Writer, figures: dict[str, str]) -> tuple[str, list[str]]:
    """Overage carried into the next period, and what became of the units that were not."""
    p = w.p
    carried = {
        **figures,
        "carried": w.number("carried_units"),
        "next_period": period_text(str(p.get("next_period", "")), language=w.language),
        "rest": w.number("charged_units"),
        "amount": w.money(p.get("amount", 0), str(p.get("currency", ""))),
    }
    lines = [
        _("%(carried)s of the %(overage)s units you used beyond your credits on %(channel)s in "
          "%(period)s were carried over: your included credits for %(next_period)s are "
          "reduced by %(carried)s units.") % carried
    ]  # fmt: skip
    charged = bool(p.get("charged_units"))
    try:
        free = not Decimal(str(p.get("amount") or 0))
    except InvalidOperation:
        free = False
    if charged and free:
        lines.append(_("The other %(rest)s units could not be carried over; no fee applies to "
                       "them.") % carried)  # fmt: skip
    elif charged and p.get("status") == "billed":
        lines.append(_("The other %(rest)s units could not be carried over and are billed: "
                       "%(amount)s.") % carried)  # fmt: skip
    elif charged:
        lines.append(_("The other %(rest)s units could not be carried over; we will tell you "
                       "whether they are billed (%(amount)s) or waived before we bill them.")
                     % carried)  # fmt: skip
    return _("%(channel)s: use beyond your credits carried over") % figures, lines


def overage_decided(w: Writer, figures: dict[str, str]) -> tuple[str, list[str]]:
    """A decision on a period's overage: billed, waived or partly waived, and why."""
    p = w.p
    currency = str(p.get("currency", ""))
    decided = {
        **figures,
        "units": w.number("charged_units"),
        "amount": w.money(p.get("amount", 0), currency),
        "billed": w.money(p.get("billed_amount", 0), currency),
        "waived": w.money(p.get("waived_amount", 0), currency),
    }
    status = p.get("status")
    if status == "waived":
        subject = _("%(channel)s: your overage of %(period)s is waived") % decided
        line = _("Your %(units)s units beyond your credits on %(channel)s in %(period)s are "
                 "not billed: we waive %(waived)s.") % decided  # fmt: skip
    elif status == "partly_waived":
        subject = _("%(channel)s: your overage of %(period)s is partly waived") % decided
        line = _("Of the %(amount)s for your %(units)s units beyond your credits on %(channel)s "
                 "in %(period)s, we waive %(waived)s and bill %(billed)s.") % decided  # fmt: skip
    else:
        subject = _("%(channel)s: your overage of %(period)s is billed") % decided
        line = _("Your %(units)s units beyond your credits on %(channel)s in %(period)s are "
                 "billed: %(billed)s.") % decided  # fmt: skip
    lines = [line]
    if p.get("reason"):
        lines.append(_("Reason: %(reason)s") % {"reason": p["reason"]})
    return subject, lines


def limit_request(kind: str, w: Writer, figures: dict[str, str]) -> tuple[str, list[str]]:
    """The decision on a customer's limit request: the credits approved and from when, or
    why it is declined."""
    p = w.p
    asked = {
        **figures,
        "requested": w.number("requested_included_units"),
        "included": w.number("included_units"),
        "before": w.number("before_included_units"),
        "date": w.effective("effective_from"),
    }
    if kind == K.LIMIT_REQUEST_DECLINED:
        lines = [
            _("You asked for %(requested)s units per period on %(channel)s (now: %(before)s; "
              "unit: %(unit)s). Your credits stay as they are.") % asked
        ]  # fmt: skip
        if p.get("reason"):
            lines.append(_("Reason: %(reason)s") % {"reason": p["reason"]})
        return _("%(channel)s: your limit request is declined") % figures, lines
    lines = [
        _("From %(date)s, your %(channel)s credits are %(included)s units per period "
          "(before: %(before)s; unit: %(unit)s).") % asked
    ]  # fmt: skip
    if p.get("included_units") != p.get("requested_included_units"):
        lines.append(_("You asked for %(requested)s units per period.") % asked)
    if p.get("reason"):
        lines.append(_("Our note: %(reason)s") % {"reason": p["reason"]})
    return _("%(channel)s: your limit request is approved") % figures, lines
