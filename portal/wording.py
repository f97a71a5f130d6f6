"""Sentences the portal shares with the notifications: the same msgids as
``notifications/messages.py``, so that a page and an e-mail say a thing alike and the
catalogue holds it once."""

from __future__ import annotations

from django.utils.translation import gettext as _

from creditguard.locale_format import number_text


def past_limit_text(*, action: str, restrict_units: int | None, restrict_window: str,
                    language: str) -> str:  # fmt: skip
    """What happens past the included credits, by the rule's action (policy § 5)."""
    if action == "charge_overage":
        return _("Further use is charged per unit as your fee schedule sets out.")
    if action == "restrict":
        return _("Further use is limited to %(units)s units per %(window)s.") % {
            "units": number_text(restrict_units or 0, language=language),
            "window": _("hour") if restrict_window == "hour" else _("day"),
        }
    if action == "suspend":
        return _("Sending on this channel is suspended until your credits reset or you top up.")
    return _("Further use may be charged; we will tell you before we bill it.")
