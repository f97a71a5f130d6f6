"""Alerts on the notifications page: a channel's extra warning thresholds and the e-mail
addresses that receive the warnings besides the contact address. Every member sees them
(``portal.views.notifications``); admins and owners add and remove them here, through the
services the API and the console would use (``alert_threshold_add`` … , audited). A form
with errors shows the page again with them beside its fields; another tenant's alert or
recipient answers 404."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from creditguard.errors import NotFound, ServiceError
from creditguard.locale_format import percent_text
from metering.models import Channel
from notifications.services.alert_recipients import (
    MAX_RECIPIENTS,
    alert_recipient_add,
    alert_recipient_remove,
)
from policies.services.alerts import (
    MAX_THRESHOLDS_PER_CHANNEL,
    alert_threshold_add,
    alert_threshold_remove,
)
from portal.access import ACT, member_required
from portal.alerts import alerts_for
from portal.forms import AlertRecipientForm, AlertThresholdForm, alert_channels
from portal.views.notifications import notifications_page


def _back() -> HttpResponse:
    return redirect(reverse("portal:notifications") + "#alerts")


def _language() -> str:
    return (get_language() or "en")[:2]


def _channel_name(channel: Channel) -> str:
    return channel.labels().get(_language(), {}).get("name") or channel.name


def _detail(exc: ServiceError) -> str:
    return str(exc.errors[0].get("detail", "")) if exc.errors else ""


@require_POST
@member_required(ACT)
def threshold_add(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    form = AlertThresholdForm(request.POST, channels=alert_channels(alerts_for(tenant=tenant)))
    if not form.is_valid():
        return notifications_page(request, status=400, threshold_form=form)
    channel = Channel.objects.filter(code=form.cleaned_data["channel"]).first()
    percent = form.cleaned_data["percent"]
    try:
        if channel is None:
            raise NotFound("No such channel.")
        alert_threshold_add(
            tenant=tenant,
            channel=channel,
            percent=percent,
            actor=request.user,  # type: ignore[arg-type]
        )
    except ServiceError as exc:
        if _detail(exc) == "too many":
            message = _("A channel has at most %(count)s alerts of your own; remove one first.") % {
                "count": MAX_THRESHOLDS_PER_CHANNEL
            }
        elif _detail(exc) == "exists":
            message = _("You have an alert at this percentage on this channel already.")
        else:
            message = _("Alerts can be set on active channels only.")
        form.add_error("percent" if _detail(exc) in ("too many", "exists") else "channel", message)
        return notifications_page(request, status=400, threshold_form=form)
    messages.success(
        request,
        _("You will be warned at %(percent)s of your %(channel)s credits.")
        % {
            "percent": percent_text(percent, language=_language()),
            "channel": _channel_name(channel),
        },
    )
    return _back()


@require_POST
@member_required(ACT)
def threshold_remove(request: HttpRequest, threshold_id: int) -> HttpResponse:
    try:
        removed = alert_threshold_remove(
            tenant=request.tenant,  # type: ignore[attr-defined]
            threshold_id=threshold_id,
            actor=request.user,  # type: ignore[arg-type]
        )
    except NotFound as exc:
        raise Http404("No such alert.") from exc
    messages.success(
        request,
        _("The alert at %(percent)s on %(channel)s is removed.")
        % {
            "percent": percent_text(removed.percent, language=_language()),
            "channel": _channel_name(removed.channel),
        },
    )
    return _back()


@require_POST
@member_required(ACT)
def recipient_add(request: HttpRequest) -> HttpResponse:
    form = AlertRecipientForm(request.POST)
    if not form.is_valid():
        return notifications_page(request, status=400, recipient_form=form)
    try:
        recipient = alert_recipient_add(
            tenant=request.tenant,  # type: ignore[attr-defined]
            email=form.cleaned_data["email"],
            actor=request.user,  # type: ignore[arg-type]
        )
    except ServiceError as exc:
        detail = _detail(exc)
        if detail == "contact":
            message = _("This is your account's contact address: it receives the warnings already.")
        elif detail == "exists":
            message = _("This address receives the warnings already.")
        elif detail == "too many":
            message = _("Your account has at most %(count)s recipients; remove one first.") % {
                "count": MAX_RECIPIENTS
            }
        else:
            message = _("Enter a valid e-mail address.")
        form.add_error("email", message)
        return notifications_page(request, status=400, recipient_form=form)
    messages.success(
        request, _("%(email)s will receive your warnings.") % {"email": recipient.email}
    )
    return _back()


@require_POST
@member_required(ACT)
def recipient_remove(request: HttpRequest, recipient_id: int) -> HttpResponse:
    try:
        removed = alert_recipient_remove(
            tenant=request.tenant,  # type: ignore[attr-defined]
            recipient_id=recipient_id,
            actor=request.user,  # type: ignore[arg-type]
        )
    except NotFound as exc:
        raise Http404("No such recipient.") from exc
    messages.success(
        request, _("%(email)s no longer receives your warnings.") % {"email": removed.email}
    )
    return _back()
