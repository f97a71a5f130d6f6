"""What every portal page shows around its content: the tenant, the switcher, the
language switch, the user menu, the navigation and the support contact."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from notifications.selectors import notifications_unread_count
from portal.access import ACT, MANAGE_MEMBERS, can
from portal.nav import NAV, page_to_return_to


def layout_context(request: HttpRequest) -> dict[str, Any]:
    """The layout's figures; for a member's page (after ``member_required``) with the
    tenant, its switcher and the navigation, else (login, password reset) without."""
    context: dict[str, Any] = {
        "support_contact": settings.SUPPORT_CONTACT,
        "languages": settings.LANGUAGES,
        # Where the language and account switches come back to: a page that answers GET,
        # also when this answer is a form's POST rendered on the action's own URL.
        "current_path": page_to_return_to(request.get_full_path())
        if getattr(request, "membership", None)
        else request.get_full_path(),
    }
    membership = getattr(request, "membership", None)
    if membership is None:
        return context
    here = request.resolver_match.view_name if request.resolver_match else ""
    counts = {"unread": notifications_unread_count(tenant=membership.tenant, user=request.user)}
    context.update(
        unread_count=counts["unread"],
        tenant=membership.tenant,
        membership=membership,
        memberships=getattr(request, "memberships", [membership]),
        can_act=can(membership, ACT),
        can_manage_members=can(membership, MANAGE_MEMBERS),
        nav=[
            {
                "url": reverse(item.url_name),
                "label": item.label,
                "active": item.url_name == here,
                "badge": counts.get(item.badge, 0) if item.badge else 0,
            }
            for item in NAV
            if can(membership, item.capability)
        ],
    )
    return context


def render_page(
    request: HttpRequest, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HttpResponse:
    """Render a portal page with the layout's context under its own."""
    return render(request, template, {**layout_context(request), **(context or {})}, status=status)
