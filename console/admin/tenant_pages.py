"""A tenant's own pages, reached from its change page: change a limit (a new rule version),
reduce credits, restrict or suspend. Each checks its permission, submits one form to one
service and shows a refusal on the form."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from console.admin.common import staff_user
from console.confirm import Outcome, attempt, confirmation_page, confirmed, going_back
from console.forms import (
    LIMIT_TERMS,
    LimitChangeForm,
    ReduceForm,
    RestrictForm,
)
from console.outcomes import restriction_text, told_sentence
from creditguard.errors import ServiceError
from metering.levels import usage_percent
from metering.selectors import balances_for_tenant
from policies.models import (
    Restriction,
)
from policies.selectors import effective_rule, limit_rules_scheduled
from policies.services.restrictions import restriction_apply
from policies.services.rules import credits_reduce, limit_rule_set
from tenants.models import Tenant


def restrict_from_form(tenant: Tenant, data: dict[str, Any], actor: User) -> Restriction:
    return restriction_apply(
        tenant=tenant,
        channel=data["channel"],
        kind=data["kind"],
        limit_units=data["limit_units"],
        window=data["window"] or "",
        duration=timedelta(hours=data["hours"]) if data["hours"] else None,
        reason=data["reason"],
        customer_reason=data["customer_reason"],
        actor=actor,
    )


class TenantPages(admin.ModelAdmin):
    """The custom views of ``TenantAdmin`` (their URL names are the role matrix's keys)."""

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:tenant_id>/limit/",
                self.admin_site.admin_view(self.limit_view),
                name="policies_tenant_limit",
            ),
            path(
                "<int:tenant_id>/restrict/",
                self.admin_site.admin_view(self.restrict_view),
                name="policies_tenant_restrict",
            ),
            path(
                "<int:tenant_id>/reduce/",
                self.admin_site.admin_view(self.reduce_view),
                name="policies_tenant_reduce",
            ),
            *super().get_urls(),
        ]

    def _form_page(
        self,
        request: HttpRequest,
        tenant: Tenant,
        form: Any,
        *,
        title: str,
        submit: str,
        template: str = "admin/console/form.html",
        **extra: Any,
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            template,
            {
                **extra,
                **self.admin_site.each_context(request),
                "title": title,
                "form": form,
                "tenant": tenant,
                "opts": self.model._meta,
                "submit": submit,
            },
        )

    def limit_view(self, request: HttpRequest, tenant_id: int) -> HttpResponse:
        """Change a limit: a new, audited rule version through ``limit_rule_set``. The page
        shows every channel's terms and this period's usage; the form is pre-filled with the
        chosen channel's terms (``?channel=<id>``), and a term left as it was is unchanged."""
        if not request.user.has_perm("policies.add_limitrule"):
            raise PermissionDenied
        tenant = get_object_or_404(Tenant, pk=tenant_id)
        now = timezone.now()
        balances = balances_for_tenant(tenant=tenant, now=now).channels
        chosen = request.POST.get("channel") or request.GET.get("channel")
        channel = next(
            (b.channel for b in balances if str(b.channel.pk) == chosen and b.channel.active),
            next((b.channel for b in balances if b.channel.active), None),
        )
        initial: dict[str, Any] = {}
        if channel is not None:
            rule = effective_rule(tenant=tenant, channel=channel, at=now)
            initial = {"channel": channel.pk, **{t: getattr(rule, t) for t in LIMIT_TERMS}}
            initial["warning_thresholds"] = list(rule.warning_thresholds)
        form = LimitChangeForm(request.POST or None, initial=initial)
        with timezone.override(tenant.tzinfo):  # a date typed is the tenant's
            valid = request.method == "POST" and not going_back(request) and form.is_valid()
        if valid:
            try:
                outcome = attempt(
                    lambda: limit_rule_set(
                        tenant=tenant,
                        channel=form.cleaned_data["channel"],
                        reason=form.cleaned_data["reason"],
                        actor=staff_user(request),
                        **form.terms(),
                        **form.schedule(),
                    ),
                    consequences=lambda done, notices: form.consequences([done], notices),
                    confirmed=confirmed(request),
                )
                change = outcome.result
            except ServiceError as exc:
                for error in exc.errors or [{"field": None, "detail": exc.detail}]:
                    form.add_error(
                        error.get("field") if error.get("field") in form.fields else None,
                        error["detail"],
                    )
            else:
                if not outcome.done:
                    return self._confirmation(request, tenant, outcome, "Confirm worse terms")
                zone = tenant.tzinfo
                dates = ", ".join(
                    f"v{v.version} from {v.effective_from.astimezone(zone):%Y-%m-%d %H:%M %Z}"
                    for v in change.versions
                )
                told = (
                    f"worse terms, so {told_sentence(outcome.notices, tenant=tenant)}"
                    if change.worsens
                    else f"better terms: {tenant} was not told"
                )
                self.message_user(
                    request,
                    f"{form.cleaned_data['channel'].name} for {tenant}: {dates} saved; {told}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:tenants_tenant_change", args=[tenant.pk])
                )
        return self._form_page(
            request,
            tenant,
            form,
            title=f"Change a limit of {tenant}",
            submit="Save the new version",
            template="admin/console/limit_form.html",
            balances=[(b, usage_percent(used=b.used, available=b.available)) for b in balances],
            scheduled=limit_rules_scheduled(tenant=tenant, at=now),
            notice_days=settings.LIMIT_NOTICE_DAYS,
        )

    def reduce_view(self, request: HttpRequest, tenant_id: int) -> HttpResponse:
        """Reduce available credits (policy § 5), audited, through ``credits_reduce``."""
        if not request.user.has_perm("policies.add_limitrule"):
            raise PermissionDenied
        tenant = get_object_or_404(Tenant, pk=tenant_id)
        form = ReduceForm(request.POST or None)
        if request.method == "POST" and not going_back(request) and form.is_valid():
            data = form.cleaned_data
            try:
                outcome = attempt(
                    lambda: credits_reduce(
                        tenant=tenant,
                        channel=data["channel"],
                        units=data["units"],
                        reason=data["reason"],
                        customer_reason=data["customer_reason"],
                        actor=staff_user(request),
                    ),
                    consequences=lambda reduced, notices: form.consequences([reduced], notices),
                    confirmed=confirmed(request),
                )
            except ServiceError as exc:
                form.add_error("units", exc.detail)
            else:
                if not outcome.done:
                    return self._confirmation(request, tenant, outcome, "Confirm the reduction")
                told = told_sentence(outcome.notices, tenant=tenant)
                self.message_user(
                    request,
                    f"{outcome.result:,} unused {data['channel'].name} credits of {tenant} "
                    f"reduced; {told}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:tenants_tenant_change", args=[tenant.pk])
                )
        return self._form_page(
            request, tenant, form, title=f"Reduce the credits of {tenant}", submit="Continue"
        )

    def restrict_view(self, request: HttpRequest, tenant_id: int) -> HttpResponse:
        """Restrict or suspend, confirmed first: the page names what it does and shows the
        text the tenant receives (``console.confirm``)."""
        if not request.user.has_perm("policies.add_restriction"):
            raise PermissionDenied
        tenant = get_object_or_404(Tenant, pk=tenant_id)
        form = RestrictForm(request.POST or None)
        if request.method == "POST" and not going_back(request) and form.is_valid():
            data = form.cleaned_data
            try:
                outcome = attempt(
                    lambda: restrict_from_form(tenant, data, staff_user(request)),
                    consequences=lambda done, notices: form.consequences([done], notices),
                    confirmed=confirmed(request),
                )
            except ServiceError as exc:
                form.add_error(None, exc.detail)
            else:
                if not outcome.done:
                    return self._confirmation(request, tenant, outcome, "Confirm the restriction")
                done = restriction_text(outcome.result, tenant)
                told = told_sentence(outcome.notices, tenant=tenant)
                self.message_user(request, f"{done}; {told}.", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:tenants_tenant_change", args=[tenant.pk])
                )
        return self._form_page(
            request, tenant, form, title=f"Restrict or suspend {tenant}", submit="Continue"
        )

    def _confirmation(
        self, request: HttpRequest, tenant: Tenant, outcome: Outcome[Any], title: str
    ) -> TemplateResponse:
        return confirmation_page(
            self, request, outcome, title=title,
            crumbs=[("Tenants", reverse("admin:tenants_tenant_changelist")),
                    (str(tenant), reverse("admin:tenants_tenant_change", args=[tenant.pk]))],
        )  # fmt: skip
