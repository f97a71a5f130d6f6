"""The portal's navigation, in one place: each page adds its entry here.

Only pages that exist are listed; an entry names its URL and the capability a member
needs to see it in the menu (the view checks the same capability itself)."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from portal.access import SEE


@dataclass(frozen=True)
class NavItem:
    url_name: str
    label: str | Promise
    capability: str = SEE
    # A count shown beside the label, by name from the layout's counts ("unread").
    badge: str = ""


# In the order the menu shows them: Overview, Usage, Credits, Notifications, Limit
# requests, Developers, Policy, Team — each page adds its line in its place.
NAV: list[NavItem] = [
    NavItem("portal:overview", _("Overview")),
    NavItem("portal:usage", _("Usage")),
    NavItem("portal:credits", _("Credits")),
    NavItem("portal:notifications", _("Notifications"), badge="unread"),
    NavItem("portal:limit_requests", _("Limit requests")),
    NavItem("portal:developers", _("Developers")),
    NavItem("portal:policy", _("Fair use policy")),
    NavItem("portal:team", _("Team")),
]
