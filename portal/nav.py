"""The portal's navigation, in one place: each page adds its entry here.

Only pages that exist are listed; an entry names its URL and the capability a member
needs to see it in the menu (the view checks the same capability itself)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.urls import Resolver404, resolve, reverse
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


# Portal pages outside the menu that answer GET themselves.
OTHER_PAGES = frozenset({"portal:usage_export", "portal:invitation"})


def page_to_return_to(url: str) -> str:
    """A page that answers GET for ``url`` — where the language and account switches send
    the person back. A menu page (with its query) or another GET page is itself; an
    action's URL that takes only a POST (``/developers/keys/``, ``/notifications/alerts/``,
    whose answer may render on that URL) is the menu page it belongs to, the one whose URL
    starts it; anything else is the overview."""
    path = urlsplit(url).path
    try:
        match = resolve(path)
    except Resolver404:
        return reverse("portal:overview")
    if match.view_name in OTHER_PAGES or match.view_name in {i.url_name for i in NAV}:
        return url
    sections = sorted((reverse(item.url_name) for item in NAV), key=len, reverse=True)
    return next((s for s in sections if path.startswith(s)), reverse("portal:overview"))
