"""Overview (``/dashboard/``): this period per channel, and accepting an open offer."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from creditguard.errors import NotFound, ServiceError
from creditguard.locale_format import money_text, number_text
from notifications.phrases import past_limit_sentence
from policies.models import LimitRule
from policies.services.topups import topup_offer_accept
from policies.terms import Terms
from portal.access import ACT, member_required
from portal.layout import render_page
from portal.overview import overview_for


@member_required()
def overview(request: HttpRequest) -> HttpResponse:
    data = overview_for(tenant=request.tenant)  # type: ignore[attr-defined]
    language = (get_language() or "en")[:2]
    rows = [
        {
            "row": row,
            "past_limit": _past_limit(row.rule, language),
            # Each announced version with what would then happen past the limit.
            "scheduled": [
                {"rule": rule, "past_limit": _past_limit(rule, language)} for rule in row.scheduled
            ],
        }
        for row in data.channels
    ]
    return render_page(request, "portal/overview.html", {"overview": data, "rows": rows})


def _past_limit(terms: Terms | LimitRule, language: str) -> str:
    return past_limit_sentence(
        action=terms.action,
        units=number_text(terms.restrict_units or 0, language=language),
        window=terms.restrict_window,
    )


@require_POST
@member_required(ACT)
def offer_accept(request: HttpRequest, offer_id: UUID) -> HttpResponse:
    """Accept an open offer through the service ``POST /topup-offers/{id}/accept`` uses;
    another tenant's offer is not found (404)."""
    try:
        topup = topup_offer_accept(tenant=request.tenant, public_id=offer_id)  # type: ignore[attr-defined]
    except NotFound as exc:
        raise Http404("No such offer.") from exc
    except ServiceError:
        messages.error(request, _("This offer is no longer open."))
        return redirect("portal:overview")
    language = (get_language() or "en")[:2]
    messages.success(
        request,
        _("Booked: %(units)s more units for %(price)s.")
        % {
            "units": number_text(topup.units, language=language),
            "price": money_text(topup.price, topup.currency, language=language),
        },
    )
    return redirect("portal:overview")
