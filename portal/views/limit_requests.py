"""Limit requests (``/limits/requests/``): ask for other included credits on a channel,
with a reason and the volume expected, and follow each request's decision. Admins and
owners ask; every member reads. Asking goes through ``limit_request_create``, the service
the staff console decides on."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from creditguard.errors import ServiceError
from creditguard.locale_format import number_text
from metering.models import Channel
from policies.selectors import effective_rules, limit_requests_of
from policies.services.limit_requests import MAX_TEXT, MAX_UNITS, limit_request_create
from portal.access import ACT, can, member_required
from portal.layout import render_page


class LimitRequestForm(forms.Form):
    channel = forms.ChoiceField(label=gettext_lazy("Channel"))
    included_units = forms.IntegerField(
        label=gettext_lazy("Included credits you need per period"),
        min_value=0,
        max_value=MAX_UNITS,
    )
    expected_volume = forms.IntegerField(
        label=gettext_lazy("Units you expect to use per period"),
        min_value=0,
        max_value=MAX_UNITS,
    )
    reason = forms.CharField(
        label=gettext_lazy("Why do you need a different limit?"),
        max_length=MAX_TEXT,
        widget=forms.Textarea(attrs={"rows": 4}),
    )

    def __init__(self, *args: Any, channels: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["channel"].choices = channels  # type: ignore[attr-defined]


@member_required(act_on_post=True)
def limit_requests(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    language = (get_language() or "en")[:2]
    channels = list(Channel.objects.filter(active=True).order_by("name"))
    rules = effective_rules(tenant=tenant, channels=channels, at=timezone.now())
    choices = [
        (
            channel.code,
            _("%(channel)s (now %(included)s per period)")
            % {
                "channel": channel.labels().get(language, {}).get("name") or channel.name,
                "included": number_text(rules[channel.pk].included_units, language=language),
            },
        )
        for channel in channels
    ]
    form = LimitRequestForm(request.POST or None, channels=choices)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            limit_request_create(
                tenant=tenant,
                channel=next(c for c in channels if c.code == data["channel"]),
                included_units=data["included_units"],
                expected_volume=data["expected_volume"],
                reason=data["reason"],
                requested_by=request.user,  # type: ignore[arg-type]
            )
        except ServiceError as exc:
            # The service speaks English to the API; the form says it in the person's words.
            field = next((e.get("field") for e in exc.errors if e.get("field") in form.fields),
                         None)  # fmt: skip
            form.add_error(field, _refusal(exc, field))
        else:
            messages.success(
                request, _("Your request is sent. We will notify you of the decision.")
            )
            return redirect("portal:limit_requests")
    return render_page(
        request,
        "portal/limit_requests.html",
        {
            "form": form if can(request.membership, ACT) else None,  # type: ignore[attr-defined]
            "requests": limit_requests_of(tenant=tenant),
        },
        status=400 if form.is_bound and form.errors else 200,
    )


def _refusal(exc: ServiceError, field: str | None) -> str:
    if exc.status == 409:
        return _("There is an open request for this channel already: wait for its decision.")
    if field == "included_units":
        return _("Ask for other credits than the ones you have now.")
    if field == "channel":
        return _("Limits can be requested on active channels only.")
    return _("Please check this field.")
