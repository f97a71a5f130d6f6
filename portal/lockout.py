"""The page a locked-out login answers with (django-axes' ``AXES_LOCKOUT_CALLABLE``): the
staff console's under /admin/, the portal's elsewhere, each in its own layout. The
figures are axes' own (its failure limit and cool-off). It lives in the portal, the top
layer, since it names both faces' templates and renders the portal's layout."""

from __future__ import annotations

from typing import Any

from axes.helpers import get_cool_off, get_failure_limit
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.access import activate_language
from portal.layout import layout_context

STAFF_TEMPLATE = "admin/login_locked.html"
PORTAL_TEMPLATE = "portal/login_locked.html"


def _status() -> int:
    # axes.conf sets its defaults on the settings object (429 unless configured).
    return int(getattr(settings, "AXES_HTTP_RESPONSE_CODE", 429))


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    context: dict[str, Any] = {
        "failure_limit": get_failure_limit(request, credentials),
        "cooloff_timedelta": get_cool_off(request),
    }
    if request.path.startswith("/admin/"):
        return render(request, STAFF_TEMPLATE, context, status=_status())
    activate_language(request, None)
    context.update(layout_context(request))
    if context["cooloff_timedelta"]:
        context["cooloff_minutes"] = round(context["cooloff_timedelta"].total_seconds() / 60)
    return render(request, PORTAL_TEMPLATE, context, status=_status())
