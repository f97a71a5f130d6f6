"""Credits and purchases (``/credits/``): packs to buy, purchased credits with their
expiry, the automatic top-up of each channel, and the history of top-ups and overage.
Buying and the settings go through the services the API and the console use."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from creditguard.errors import NotFound, ServiceError
from creditguard.locale_format import money_text, number_text, period_text
from metering.models import Channel
from policies.models import AutoTopUp, TopUpPack
from policies.services.catalog import auto_topup_save
from policies.services.purchases import topup_pack_buy
from portal.access import ACT, member_required
from portal.credits import credits_for
from portal.layout import render_page

MAX_PER_PERIOD = 20


class BuyForm(forms.Form):
    # A fresh key in each rendered form: submitting the same form twice buys once.
    purchase_key = forms.UUIDField()


class AutoTopUpForm(forms.Form):
    enabled = forms.BooleanField(required=False, label=gettext_lazy("On"))
    threshold_units = forms.IntegerField(
        min_value=0, max_value=10**12, label=gettext_lazy("When the remaining credits fall to")
    )
    pack = forms.ModelChoiceField(queryset=TopUpPack.objects.none(), label=gettext_lazy("Buy"))
    max_per_period = forms.IntegerField(
        min_value=1, max_value=MAX_PER_PERIOD, label=gettext_lazy("At most, per period")
    )

    def __init__(self, *args: Any, channel: Channel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["pack"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = TopUpPack.objects.filter(channel=channel, active=True)
        field.error_messages["invalid_choice"] = _("Choose one of the packs on sale.")


@member_required()
def credits_page(request: HttpRequest) -> HttpResponse:
    data = credits_for(tenant=request.tenant)  # type: ignore[attr-defined]
    language = (get_language() or "en")[:2]
    return render_page(
        request,
        "portal/credits.html",
        {
            "credits": data,
            "has_packs": any(row.packs for row in data.channels),
            "charges": [
                {"charge": charge, "period": period_text(charge.period.label, language=language)}
                for charge in data.charges
            ],
            "purchase_key": uuid.uuid4(),
            "max_per_period": MAX_PER_PERIOD,
            "validity_days": settings.TOPUP_VALIDITY_DAYS,
        },
    )


@require_POST
@member_required(ACT)
def pack_buy(request: HttpRequest, pack_id: int) -> HttpResponse:
    """Buy a pack through ``topup_pack_buy``; a pack not on sale is not found (404)."""
    form = BuyForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The purchase could not be read; please try again."))
        return redirect("portal:credits")
    try:
        topup = topup_pack_buy(
            tenant=request.tenant,  # type: ignore[attr-defined]
            pack_id=pack_id,
            purchase_key=form.cleaned_data["purchase_key"],
            actor=request.user,  # type: ignore[arg-type]
        )
    except NotFound as exc:
        raise Http404("No such pack.") from exc
    except ServiceError:
        messages.error(request, _("This purchase could not be made."))
        return redirect("portal:credits")
    language = (get_language() or "en")[:2]
    messages.success(
        request,
        _("Booked: %(units)s more units for %(price)s.")
        % {
            "units": number_text(topup.units, language=language),
            "price": money_text(topup.price, topup.currency, language=language),
        },
    )
    return redirect("portal:credits")


@require_POST
@member_required(ACT)
def auto_topup_change(request: HttpRequest, channel_code: str) -> HttpResponse:
    """Save a channel's automatic top-up through ``auto_topup_save`` (audited)."""
    tenant = request.tenant  # type: ignore[attr-defined]
    channel = Channel.objects.filter(code=channel_code, active=True).first()
    if channel is None:
        raise Http404("No such channel.")
    form = AutoTopUpForm(request.POST, channel=channel)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect(f"{_credits_url()}#auto-{channel.code}")
    setting = AutoTopUp.objects.for_tenant(tenant).filter(channel=channel).first()
    setting = setting or AutoTopUp(tenant=tenant, channel=channel)
    for name, value in form.cleaned_data.items():
        setattr(setting, name, value)
    try:
        auto_topup_save(auto_topup=setting, actor=request.user)  # type: ignore[arg-type]
    except ServiceError:
        messages.error(request, _("The automatic top-up could not be saved."))
    else:
        messages.success(request, _("Automatic top-up saved."))
    return redirect(f"{_credits_url()}#auto-{channel.code}")


def _credits_url() -> str:
    return reverse("portal:credits")
