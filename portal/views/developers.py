"""Developers (``/developers/``): API keys (create with scopes, the key shown once; revoke),
webhook endpoints (create, the signing secret shown once; rotate it; send a test event;
delete), recent deliveries (retry a failed one) and how to call the API. Every member
reads; admins and owners act, through the services the API and the console use. A key or
secret is shown only in the answer to the POST that made it, never again."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from creditguard.errors import Conflict, NotFound, ServiceError
from notifications.models import WebhookEndpoint
from notifications.services.webhook_deliveries import delivery_retry, webhook_endpoint_test
from notifications.services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_secret_rotate,
)
from portal.access import ACT, member_required
from portal.developers import TENANT_SCOPES, developers_for
from portal.layout import render_page
from tenants.models import ApiKey
from tenants.services import api_key_create, api_key_revoke

SCOPE_LABELS = {
    "usage:write": gettext_lazy("Send usage and ask for authorization"),
    "usage:read": gettext_lazy("Read balances, usage and notifications"),
    "webhooks:manage": gettext_lazy("Manage webhook endpoints"),
}


class ApiKeyForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    scopes = forms.MultipleChoiceField(
        label=gettext_lazy("Scopes"),
        choices=[(scope.value, SCOPE_LABELS[scope.value]) for scope in TENANT_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        initial=["usage:write"],
        error_messages={"required": gettext_lazy("Choose at least one scope.")},
    )


class WebhookEndpointForm(forms.Form):
    url = forms.CharField(label=gettext_lazy("URL"), max_length=500)


@member_required()
def developers(request: HttpRequest) -> HttpResponse:
    return _page(request)


def _page(request: HttpRequest, status: int = 200, **shown: Any) -> HttpResponse:
    """The page; ``shown`` carries the forms as posted and a key or secret just made."""
    page = developers_for(tenant=request.tenant)  # type: ignore[attr-defined]
    context = {
        "page": page,
        "scope_labels": SCOPE_LABELS,
        "key_form": shown.pop("key_form", None) or ApiKeyForm(),
        "endpoint_form": shown.pop("endpoint_form", None) or WebhookEndpointForm(),
        **shown,
    }
    response = render_page(request, "portal/developers.html", context, status=status)
    if "new_key" in shown or "new_secret" in shown:
        # A key or secret is shown once: no cache may keep the page.
        response["Cache-Control"] = "no-store"
    return response


@require_POST
@member_required(ACT)
def key_create(request: HttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _page(request, status=400, key_form=form)
    try:
        issued = api_key_create(
            tenant=request.tenant,  # type: ignore[attr-defined]
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            created_by=request.user,  # type: ignore[arg-type]
        )
    except Conflict:
        form.add_error(None, _("Your account is closed: no new keys are issued."))
        return _page(request, status=409, key_form=form)
    except ServiceError:
        form.add_error("name", _("A key needs a name of at most 100 characters."))
        return _page(request, status=400, key_form=form)
    return _page(request, new_key=issued)


@require_POST
@member_required(ACT)
def key_revoke(request: HttpRequest, prefix: str) -> HttpResponse:
    api_key = ApiKey.objects.for_tenant(request.tenant).filter(prefix=prefix).first()  # type: ignore[attr-defined]
    if api_key is None:
        raise Http404("No such key.")
    api_key_revoke(api_key=api_key, actor=request.user, reason="Revoked in the portal")  # type: ignore[arg-type]
    messages.success(request, _("Key %(name)s is revoked.") % {"name": api_key.name})
    return redirect("portal:developers")


# Why a URL is refused, by the service's error detail, in words the customer reads.
URL_REFUSALS = {
    "required": gettext_lazy("Enter the URL of your endpoint."),
    "not an http(s) URL": gettext_lazy("Enter an absolute URL starting with https://."),
    "https required": gettext_lazy("The URL must start with https://."),
    "no credentials": gettext_lazy("Leave user name and password out of the URL."),
    "at most 500 characters": gettext_lazy("The URL is too long (at most 500 characters)."),
    "port out of range": gettext_lazy("The port of the URL is out of range."),
}


@require_POST
@member_required(ACT)
def endpoint_create(request: HttpRequest) -> HttpResponse:
    form = WebhookEndpointForm(request.POST)
    if not form.is_valid():
        return _page(request, status=400, endpoint_form=form)
    try:
        endpoint = webhook_endpoint_create(
            tenant=request.tenant,  # type: ignore[attr-defined]
            url=form.cleaned_data["url"],
            actor=request.user,  # type: ignore[arg-type]
        )
    except ServiceError as refused:
        detail = refused.errors[0]["detail"] if refused.errors else ""
        form.add_error(
            "url",
            URL_REFUSALS.get(detail)
            or (
                _("You have as many endpoints as an account may have; delete one first.")
                if not refused.errors
                else _(
                    "This URL cannot receive events: its host must resolve to public "
                    "internet addresses only."
                )
            ),
        )
        return _page(request, status=400, endpoint_form=form)
    return _page(request, new_secret={"endpoint": endpoint, "secret": endpoint.secret})


def _endpoint_action(request: HttpRequest, action: Any, endpoint_id: UUID) -> Any:
    try:
        return action(tenant=request.tenant, public_id=endpoint_id)  # type: ignore[attr-defined]
    except NotFound as exc:
        raise Http404("No such endpoint.") from exc


@require_POST
@member_required(ACT)
def endpoint_rotate(request: HttpRequest, endpoint_id: UUID) -> HttpResponse:
    def rotate(**kwargs: Any) -> str:
        return webhook_endpoint_secret_rotate(actor=request.user, **kwargs)  # type: ignore[arg-type]

    secret = _endpoint_action(request, rotate, endpoint_id)
    endpoint = WebhookEndpoint.objects.for_tenant(request.tenant).get(public_id=endpoint_id)  # type: ignore[attr-defined]
    return _page(request, new_secret={"endpoint": endpoint, "secret": secret, "rotated": True})


@require_POST
@member_required(ACT)
def endpoint_test(request: HttpRequest, endpoint_id: UUID) -> HttpResponse:
    try:
        _endpoint_action(request, webhook_endpoint_test, endpoint_id)
    except Conflict:
        messages.error(request, _("This endpoint is disabled; it receives no events."))
    else:
        messages.success(
            request, _("Test event sent. Its delivery is listed below within a few seconds.")
        )
    return redirect("portal:developers")


@require_POST
@member_required(ACT)
def endpoint_delete(request: HttpRequest, endpoint_id: UUID) -> HttpResponse:
    def delete(**kwargs: Any) -> None:
        webhook_endpoint_delete(actor=request.user, **kwargs)  # type: ignore[arg-type]

    _endpoint_action(request, delete, endpoint_id)
    messages.success(request, _("The endpoint is deleted; it receives no more events."))
    return redirect("portal:developers")


@require_POST
@member_required(ACT)
def delivery_retry_view(request: HttpRequest, delivery_id: int) -> HttpResponse:
    try:
        delivery_retry(tenant=request.tenant, delivery_id=delivery_id)  # type: ignore[attr-defined]
    except NotFound as exc:
        raise Http404("No such delivery.") from exc
    except Conflict:
        messages.error(
            request, _("Only a failed delivery to an active endpoint can be sent again.")
        )
    else:
        messages.success(request, _("The delivery is sent again."))
    return redirect("portal:developers")
