"""Policy (``/policy/``): the fair use policy in force in the person's language, the next
published version with its date and summary, and acknowledging them."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from creditguard.errors import NotFound
from policies.models import PolicyAcknowledgement
from policies.services.policy import policy_acknowledge, policy_current, policy_upcoming
from portal.access import member_required
from portal.layout import render_page
from portal.policy_text import policy_html


@member_required(act_on_post=True)
def policy(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    if request.method == "POST":
        return _acknowledge(request)
    language = (get_language() or "en")[:2]
    acknowledged = {ack.version_id: ack for ack in PolicyAcknowledgement.objects.for_tenant(tenant)}
    versions = []
    for role, version in (("upcoming", policy_upcoming()), ("current", policy_current())):
        if version is not None:
            versions.append(
                {
                    "role": role,
                    "version": version,
                    "html": policy_html(version.text(language)),
                    "summary": version.summary(language),
                    "acknowledgement": acknowledged.get(version.pk),
                }
            )
    return render_page(request, "portal/policy.html", {"versions": versions})


def _acknowledge(request: HttpRequest) -> HttpResponse:
    """Acknowledge the version the form names, through the service
    ``POST /api/v1/policy/acknowledge`` uses, in the person's name."""
    user = request.user
    try:
        acknowledgement = policy_acknowledge(
            tenant=request.tenant,  # type: ignore[attr-defined]
            by=user.get_username(),
            label=request.POST.get("version") or None,
            actor=user,  # type: ignore[arg-type]
        )
    except NotFound as exc:
        raise Http404("No such policy version.") from exc
    messages.success(
        request,
        _("You acknowledged fair use policy %(version)s.")
        % {"version": acknowledgement.version.label},
    )
    return redirect("portal:policy")
