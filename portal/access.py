"""Who may see and do what in the portal.

A portal request belongs to one person (Django's session login) acting for one tenant:
the *current* tenant, kept in the session, among the tenants the person is a member of.
``member_required`` resolves it once per request, in one query that also reads the
person's other tenants for the switcher, and gives the view ``request.tenant`` and
``request.membership``. Viewers see; admins and owners act; owners manage members.
Staff accounts are customers only where they are members: ``is_staff`` grants nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate, ParamSpec

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from tenants.models import Membership, Tenant

SESSION_TENANT = "portal_tenant_id"
LANGUAGE_COOKIE = "django_language"  # Django's LANGUAGE_COOKIE_NAME, set by set_language

Role = Membership.Role
# What each role may do; a view names the capability it needs, not a list of roles.
SEE, ACT, MANAGE_MEMBERS = "see", "act", "manage_members"
CAPABILITIES: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset({SEE}),
    Role.ADMIN: frozenset({SEE, ACT}),
    Role.OWNER: frozenset({SEE, ACT, MANAGE_MEMBERS}),
}

P = ParamSpec("P")
View = Callable[Concatenate[HttpRequest, P], HttpResponse]


class PortalRequest(HttpRequest):
    """A request that passed ``member_required`` (for type checkers)."""

    tenant: Tenant
    membership: Membership
    memberships: list[Membership]


def can(membership: Membership, capability: str) -> bool:
    """Whether the member's role grants ``capability`` (SEE, ACT or MANAGE_MEMBERS)."""
    return capability in CAPABILITIES.get(membership.role, frozenset())


def memberships_of(user: Any) -> list[Membership]:
    """The person's memberships with their tenants, by tenant name (one query)."""
    if not user.is_authenticated:
        return []
    return list(
        Membership.objects.filter(user=user)
        .select_related("tenant")
        .order_by("tenant__name", "tenant_id")
    )


# The tenant a session opens at: where the person's role is highest (an owner acts for
# it), then by name — not simply the first by name, where one may be only a viewer.
ROLE_RANK: dict[str, int] = {Role.OWNER: 0, Role.ADMIN: 1, Role.VIEWER: 2}


def default_membership(memberships: list[Membership]) -> Membership | None:
    """The membership a new session starts at: the highest role, then the tenant's name
    (``memberships`` come by name)."""
    return min(memberships, key=lambda m: ROLE_RANK.get(m.role, 3), default=None)


def current_membership(request: HttpRequest, memberships: list[Membership]) -> Membership | None:
    """The membership of the tenant chosen in the session, else ``default_membership``."""
    chosen = request.session.get(SESSION_TENANT)
    for membership in memberships:
        if membership.tenant_id == chosen:
            return membership
    return default_membership(memberships)


def portal_language(request: HttpRequest, tenant: Tenant | None) -> str:
    """The person's choice (the language cookie ``set_language`` writes), else the
    tenant's language, else the browser's."""
    chosen = request.COOKIES.get(LANGUAGE_COOKIE)
    if chosen and translation.check_for_language(chosen):
        return chosen
    if tenant is not None:
        return tenant.language
    return translation.get_language_from_request(request)


def activate_language(request: HttpRequest, tenant: Tenant | None) -> None:
    language = portal_language(request, tenant)
    translation.activate(language)
    request.LANGUAGE_CODE = language


def member_required(
    capability: str = SEE, *, act_on_post: bool = False
) -> Callable[[View[P]], View[P]]:
    """Let a view through for a member of the current tenant whose role grants
    ``capability``; with ``act_on_post``, a POST also needs ACT (a page every member
    reads, whose form only admins and owners may send). Anonymous people go to the login
    page; a person who is a member of no tenant (staff included) and a role that falls
    short answer 403. The view gets ``request.tenant``, ``request.membership`` and
    ``request.memberships`` (the switcher's), and the language is activated."""

    def decorate(view: View[P]) -> View[P]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            memberships = memberships_of(request.user)
            membership = current_membership(request, memberships)
            activate_language(request, membership.tenant if membership else None)
            if membership is None:
                raise PermissionDenied("Not a member of any customer account.")
            needed = ACT if act_on_post and request.method == "POST" else capability
            if not can(membership, needed) or not can(membership, capability):
                raise PermissionDenied("Your role does not allow this.")
            request.tenant = membership.tenant  # type: ignore[attr-defined]
            request.membership = membership  # type: ignore[attr-defined]
            request.memberships = memberships  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
