"""Notifications (``/notifications/``): the in-app list of ``GET /api/v1/notifications``
(same selector), in the person's language, with each person's read state; below it the
alerts (``portal.views.alerts``): extra warning thresholds and recipients."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from notifications.messages import render_message
from notifications.selectors import notifications_for_person
from notifications.services.read import notifications_mark_read
from portal.access import ACT, can, member_required
from portal.alerts import alerts_for
from portal.forms import AlertRecipientForm, AlertThresholdForm, alert_channels
from portal.layout import render_page

PAGE_SIZE = 20


@member_required()
def notification_list(request: HttpRequest) -> HttpResponse:
    return notifications_page(request)


def notifications_page(request: HttpRequest, *, status: int = 200, **forms: Any) -> HttpResponse:
    """The list and the alerts section; ``forms`` carries an alert form as posted, to show
    its errors beside its fields."""
    tenant = request.tenant  # type: ignore[attr-defined]
    unread_only = request.GET.get("show") == "unread"
    listed = notifications_for_person(tenant=tenant, user=request.user, unread_only=unread_only)
    page = Paginator(listed, PAGE_SIZE).get_page(request.GET.get("page"))
    language = (get_language() or "en")[:2]
    items = [
        {
            "notification": n,
            "message": render_message(n, language=language, time_zone=tenant.tzinfo),
        }
        for n in page.object_list
    ]
    can_act = can(request.membership, ACT)  # type: ignore[attr-defined]
    alerts = alerts_for(tenant=tenant)
    if can_act:
        forms.setdefault("threshold_form", AlertThresholdForm(channels=alert_channels(alerts)))
        forms.setdefault("recipient_form", AlertRecipientForm())
    return render_page(
        request,
        "portal/notifications.html",
        {"page": page, "items": items, "unread_only": unread_only, "alerts": alerts, **forms},
        status=status,
    )


@require_POST
@member_required()
def notifications_read(request: HttpRequest) -> HttpResponse:
    """Mark one notification (``id``) or all (``all``) read, for this person only; read
    state is personal, so a viewer marks too. Another tenant's id matches nothing."""
    public_ids: list[uuid.UUID] | None = None
    if not request.POST.get("all"):
        public_ids = []
        for value in request.POST.getlist("id"):
            try:
                public_ids.append(uuid.UUID(value))
            except ValueError:
                continue
    notifications_mark_read(
        tenant=request.tenant,  # type: ignore[attr-defined]
        user=request.user,
        public_ids=public_ids,
    )
    if public_ids is None:
        # One marked read shows it on its own row; all of them say so.
        messages.success(request, _("All notifications are marked as read."))
    # Back to the list as it was shown (its filter and page), nothing else.
    shown = QueryDict(request.POST.get("return", ""))
    back = QueryDict(mutable=True)
    if shown.get("show") == "unread":
        back["show"] = "unread"
    if shown.get("page", "").isdigit():
        back["page"] = shown["page"]
    target = reverse("portal:notifications")
    return redirect(f"{target}?{back.urlencode()}" if back else target)
