"""Limit requests: the queue of customers' requests (open first, oldest first), each
reviewed beside the tenant's usage of the last periods on its channel, the terms in force,
the latest recommendation with its peer cohort, and earlier requests; approved through
``limit_request_approve`` (a rule version by ``limit_rule_set``, with its notice rules) or
declined with a reason the customer reads. Limits are Administrators': approving needs
``policies.add_limitrule`` as any limit change does, declining
``policies.change_limitrequest``; every staff role sees the queue."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from console.admin.common import staff_user
from console.formats import count_text, staff_instant
from console.outcomes import notifications_during, told_sentence
from creditguard.errors import ServiceError
from metering.levels import usage_percent
from metering.models import Balance
from policies.models import LimitRequest
from policies.models.rules import Action, CarryOver
from policies.selectors import limit_request_review
from policies.services.limit_requests import (
    MAX_TEXT,
    MAX_UNITS,
    limit_request_approve,
    limit_request_decline,
)

APPROVE_PERMISSION = "policies.add_limitrule"
DECLINE_PERMISSION = "policies.change_limitrequest"


class ApproveForm(forms.Form):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "approve_%s")  # ids apart from the decline form's
        super().__init__(*args, **kwargs)

    included_units = forms.IntegerField(
        min_value=0, max_value=MAX_UNITS, label="Included credits per period",
        help_text="What the customer asked for; change it to approve another figure.",
    )  # fmt: skip
    reason = forms.CharField(
        max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Internal: the rule version's reason and the audit trail.",
    )  # fmt: skip
    customer_reason = forms.CharField(
        required=False, max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 2}),
        label="Note to the customer", help_text="Optional; sent with the approval.",
    )  # fmt: skip


class DeclineForm(forms.Form):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "decline_%s")
        super().__init__(*args, **kwargs)

    customer_reason = forms.CharField(
        max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 3}),
        label="Reason for the customer", help_text="Sent to the customer with the decision.",
    )  # fmt: skip


@admin.register(LimitRequest)
class LimitRequestAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "tenant",
        "channel_name",
        "status",
        "had",
        "asks_for",
        "expects",
        "asked",
        "review",
    ]
    list_display_links = None  # the review is the request's page (``number``, ``review``)
    list_filter = ["status", "channel"]
    list_select_related = ["tenant", "channel"]
    search_fields = ["tenant__name", "tenant__slug"]
    # The queue: open requests first ("open" > "declined" > "approved"), oldest first.
    ordering = ["-status", "requested_at"]
    readonly_fields = [f.name for f in LimitRequest._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # customers ask in the portal

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # decided, never deleted: they are the tenant's history

    @admin.display(description="ID", ordering="pk")
    def number(self, limit_request: LimitRequest) -> str:
        url = reverse("admin:policies_limitrequest_review", args=[limit_request.pk])
        return format_html('<a href="{}">#{}</a>', url, limit_request.pk)

    @admin.display(description="Channel", ordering="channel__sort_order")
    def channel_name(self, limit_request: LimitRequest) -> str:
        return limit_request.channel.name

    @admin.display(description="Had", ordering="current_included_units")
    def had(self, limit_request: LimitRequest) -> str:
        return count_text(limit_request.current_included_units)

    @admin.display(description="Asks for", ordering="included_units")
    def asks_for(self, limit_request: LimitRequest) -> str:
        return count_text(limit_request.included_units)

    @admin.display(description="Expects to use", ordering="expected_volume")
    def expects(self, limit_request: LimitRequest) -> str:
        return count_text(limit_request.expected_volume)

    @admin.display(description="Asked", ordering="requested_at")
    def asked(self, limit_request: LimitRequest) -> str:
        return staff_instant(limit_request.requested_at)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:  # fmt: skip
        """The review is a request's page: the admin's field list of it is not offered."""
        if not object_id.isdigit():
            return HttpResponseRedirect(reverse("admin:policies_limitrequest_changelist"))
        return HttpResponseRedirect(
            reverse("admin:policies_limitrequest_review", args=[int(object_id)])
        )

    @admin.display(description="")
    def review(self, limit_request: LimitRequest) -> str:
        url = reverse("admin:policies_limitrequest_review", args=[limit_request.pk])
        label = "Review and decide" if limit_request.status == "open" else "Review"
        return format_html('<a href="{}">{}</a>', url, label)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:request_id>/review/",
                self.admin_site.admin_view(self.review_view),
                name="policies_limitrequest_review",
            ),
            path(
                "<int:request_id>/approve/",
                self.admin_site.admin_view(self.approve_view),
                name="policies_limitrequest_approve",
            ),
            path(
                "<int:request_id>/decline/",
                self.admin_site.admin_view(self.decline_view),
                name="policies_limitrequest_decline",
            ),
            *super().get_urls(),
        ]

    def _request(self, request_id: int) -> LimitRequest:
        return get_object_or_404(
            LimitRequest.objects.select_related("tenant", "channel", "requested_by"), pk=request_id
        )

    def _page(
        self, request: HttpRequest, limit_request: LimitRequest, *, approve: ApproveForm | None,
        decline: DeclineForm | None, status: int = 200,
    ) -> TemplateResponse:  # fmt: skip
        review = limit_request_review(limit_request=limit_request, at=timezone.now())
        # Percent of the included credits, as the billing export and the portal read a
        # period: ``available`` after the close holds only what was drawn.
        history = [(balance, _percent_of_included(balance)) for balance in review.history]
        terms = [_terms_row(review.rule.source, review.rule)] + [
            _terms_row(f"v{rule.version} scheduled from {staff_instant(rule.effective_from)}", rule)
            for rule in review.scheduled
        ]
        return TemplateResponse(
            request,
            "admin/console/limit_request_review.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Limit request #{limit_request.pk} of {limit_request.tenant}",
                "opts": self.model._meta,
                "review": review,
                "history": history,
                "terms": terms,
                "approve_form": approve,
                "decline_form": decline,
                "notice_days": settings.LIMIT_NOTICE_DAYS,
            },
            status=status,
        )

    def _forms(
        self, request: HttpRequest, limit_request: LimitRequest
    ) -> tuple[ApproveForm | None, DeclineForm | None]:
        """The forms this person may send, for an open request."""
        if limit_request.status != LimitRequest.Status.OPEN:
            return None, None
        user = request.user
        approve = (
            ApproveForm(initial={"included_units": limit_request.included_units})
            if user.has_perm(APPROVE_PERMISSION)
            else None
        )
        decline = DeclineForm() if user.has_perm(DECLINE_PERMISSION) else None
        return approve, decline

    def review_view(self, request: HttpRequest, request_id: int) -> HttpResponse:
        if not request.user.has_perm("policies.view_limitrequest"):
            raise PermissionDenied
        limit_request = self._request(request_id)
        approve, decline = self._forms(request, limit_request)
        return self._page(request, limit_request, approve=approve, decline=decline)

    def approve_view(self, request: HttpRequest, request_id: int) -> HttpResponse:
        if not request.user.has_perm(APPROVE_PERMISSION):
            raise PermissionDenied
        limit_request = self._request(request_id)
        if request.method != "POST":
            return self.review_view(request, request_id)
        form = ApproveForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                decided, notices = notifications_during(
                    lambda: limit_request_approve(
                        limit_request=limit_request, included_units=data["included_units"],
                        reason=data["reason"], customer_reason=data["customer_reason"],
                        actor=staff_user(request),
                    )
                )  # fmt: skip
            except ServiceError as exc:
                _refusal(form, exc)
            else:
                assert decided.effective_from is not None
                when = decided.effective_from.astimezone(decided.tenant.tzinfo)
                self.message_user(
                    request,
                    f"Request #{decided.pk} of {decided.tenant} approved: "
                    f"{decided.approved_included_units:,} {decided.channel.name} credits per "
                    f"period from {when:%Y-%m-%d %H:%M %Z} "
                    f"(rule v{decided.rule.version if decided.rule else '?'}); "
                    f"{told_sentence(notices, tenant=decided.tenant)}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:policies_limitrequest_changelist"))
        return self._page(request, limit_request, approve=form, decline=None, status=400)

    def decline_view(self, request: HttpRequest, request_id: int) -> HttpResponse:
        if not request.user.has_perm(DECLINE_PERMISSION):
            raise PermissionDenied
        limit_request = self._request(request_id)
        if request.method != "POST":
            return self.review_view(request, request_id)
        form = DeclineForm(request.POST)
        if form.is_valid():
            try:
                decided, notices = notifications_during(
                    lambda: limit_request_decline(
                        limit_request=limit_request,
                        customer_reason=form.cleaned_data["customer_reason"],
                        actor=staff_user(request),
                    )
                )
            except ServiceError as exc:
                _refusal(form, exc)
            else:
                self.message_user(
                    request,
                    f"Request #{decided.pk} of {decided.tenant} declined; "
                    f"{told_sentence(notices, tenant=decided.tenant)}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:policies_limitrequest_changelist"))
        return self._page(request, limit_request, approve=None, decline=form, status=400)


def _refusal(form: forms.Form, exc: ServiceError) -> None:
    """A service's refusal on the form: on its field when the form has it."""
    for error in exc.errors or [{"field": None, "detail": exc.detail}]:
        field = error.get("field")
        form.add_error(field if field in form.fields else None, error.get("detail") or exc.detail)


def _percent_of_included(balance: Balance) -> int | None:
    included = balance.included_units  # type: ignore[attr-defined]  # balances_by_period's
    return usage_percent(used=balance.used, available=included)


def _terms_row(source: str, terms: Any) -> dict[str, str]:
    """A row of the terms table in words: figures grouped, choices by their labels."""
    return {
        "source": source,
        "included": count_text(terms.included_units),
        "hard_limit": "none" if terms.hard_limit is None else count_text(terms.hard_limit),
        "action": _label(Action, terms.action),
        "carry_over": _label(CarryOver, terms.carry_over),
    }


def _label(choices: Any, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value
