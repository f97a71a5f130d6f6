"""Tenants at a glance (usage badges, status, pending overage, filters), the tenant's page
saved through ``tenant_create`` / ``tenant_update``, and the bulk actions on tenants
(closing and reopening among them)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.db.models import DecimalField, OuterRef, QuerySet, Subquery, Sum
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from console.actions import form_action
from console.admin.common import adopt, staff_user
from console.admin.tenant_inlines import (
    AuditInline,
    GrantInline,
    LimitRuleInline,
    MembershipInline,
    NotificationInline,
    OverageChargeInline,
    RestrictionInline,
    TopUpInline,
)
from console.admin.tenant_list import (
    PendingOverageFilter,
    UsageFilter,
    current_balances,
    usage_badges,
)
from console.admin.tenant_pages import TenantPages, restrict_from_form
from console.formats import staff_money
from console.forms import (
    OfferForm,
    ReasonForm,
    RestrictForm,
    TenantForm,
)
from console.tenant_summary import tenant_summary
from creditguard.money import round_money
from metering.models import Channel
from policies.models import (
    OverageCharge,
)
from policies.services.recommend import recommendations_compute
from policies.services.topups import topup_offer_create
from tenants.models import Tenant
from tenants.services import (
    TENANT_EDITABLE,
    TENANT_FIXED_ONCE_BILLED,
    tenant_close,
    tenant_create,
    tenant_reopen,
    tenant_update,
)


@admin.register(Tenant)
class TenantAdmin(TenantPages):
    list_display = ["name", "status_badge", "usage", "pending_overage", "industry", "size_band"]
    list_filter = [UsageFilter, "status", PendingOverageFilter, "industry", "size_band"]
    search_fields = ["name", "slug", "contact_email", "contact_name"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["status", "created_at"]
    inlines = [
        MembershipInline,
        LimitRuleInline,
        RestrictionInline,
        OverageChargeInline,
        GrantInline,
        TopUpInline,
        NotificationInline,
        AuditInline,
    ]
    change_form_template = "admin/console/tenant_change_form.html"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a tenant is closed (audited, keys revoked); its history stays

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], add: bool = False,
        change: bool = False, form_url: str = "", obj: Tenant | None = None,
    ) -> HttpResponse:  # fmt: skip
        """A tenant's page opens with its summary (``console.tenant_summary``): this
        period's usage with the last twelve periods, and what waits for staff."""
        if obj is not None and obj.pk is not None:
            context["summary"] = tenant_summary(tenant=obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    list_per_page = 50
    actions = ["compute_recommendations", "send_offer", "restrict_bulk", "close", "reopen"]
    form = TenantForm

    @form_action(
        form_class=RestrictForm,
        title="Restrict or suspend",
        description="Restrict or suspend the selected tenants",
        permissions=["restrict"],
    )
    def restrict_bulk(self, request: HttpRequest, tenant: Tenant, data: dict[str, Any]) -> None:
        restrict_from_form(tenant, data, staff_user(request))

    def has_restrict_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("policies.add_restriction")

    @form_action(
        form_class=OfferForm,
        title="Send a top-up offer",
        description="Send a top-up offer to the selected tenants",
        permissions=["offer"],
        success="Offer sent to {count} tenant(s); they were notified.",
    )
    def send_offer(self, request: HttpRequest, tenant: Tenant, data: dict[str, Any]) -> None:
        topup_offer_create(tenant=tenant, pack=data["pack"], actor=staff_user(request))

    def has_offer_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("policies.add_topupoffer")

    @form_action(
        form_class=ReasonForm,
        title="Close tenants",
        description="Close the selected tenants (revokes their API keys)",
        permissions=["change"],
        success="{count} tenant(s) closed; their API keys are revoked.",
        success_level=messages.SUCCESS,
        context=lambda: {
            "notice": "Closing a tenant revokes every API key it has, for good: it can no "
            "longer report usage or ask for authorizations. Its history stays. A reopened "
            "tenant needs new keys."
        },
    )
    def close(self, request: HttpRequest, tenant: Tenant, data: dict[str, Any]) -> None:
        tenant_close(tenant=tenant, reason=data["reason"], actor=staff_user(request))

    @form_action(
        form_class=ReasonForm,
        title="Reopen tenants",
        description="Reopen the selected closed tenants",
        permissions=["change"],
        success="{count} tenant(s) reopened; issue them new API keys.",
        success_level=messages.SUCCESS,
    )
    def reopen(self, request: HttpRequest, tenant: Tenant, data: dict[str, Any]) -> None:
        tenant_reopen(tenant=tenant, reason=data["reason"], actor=staff_user(request))

    @admin.action(
        description="Compute limit recommendations for the selected tenants",
        permissions=["recommend"],
    )
    def compute_recommendations(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        created = recommendations_compute(tenants=list(queryset))
        self.message_user(
            request, f"{len(created)} recommendation(s) computed; see Limit recommendations."
        )

    def has_recommend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("policies.add_limitrecommendation")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        """Usage of the current period per active channel and the pending overage, as
        subqueries: a fixed number of queries whatever the number of tenants."""
        queryset = super().get_queryset(request)
        channels = list(Channel.objects.filter(active=True))
        request.console_channels = channels  # type: ignore[attr-defined]
        for channel in channels:
            balance = current_balances().filter(tenant=OuterRef("pk"), channel=channel)
            queryset = queryset.annotate(
                **{
                    f"used_{channel.pk}": Subquery(balance.values("used")[:1]),
                    f"available_{channel.pk}": Subquery(balance.values("available")[:1]),
                }
            )
        pending = (
            OverageCharge.objects.filter(tenant=OuterRef("pk"), status="pending")
            .values("tenant")
            .annotate(total=Sum("amount"))
            .values("total")
        )
        return queryset.annotate(
            pending_total=Subquery(
                pending, output_field=DecimalField(max_digits=14, decimal_places=2)
            )
        )

    @admin.display(description="Usage this period")
    def usage(self, tenant: Tenant) -> str:
        """Named for the system check; each request's column is the closure of
        ``get_list_display``."""
        return usage_badges(tenant, [])

    def get_list_display(self, request: HttpRequest) -> Any:
        """The usage column reads the channels ``get_queryset`` annotated for this request:
        a closure over the request, because one admin instance serves every thread."""

        @admin.display(description="Usage this period")
        def usage(tenant: Tenant) -> str:
            return usage_badges(tenant, getattr(request, "console_channels", []))

        return [usage if name == "usage" else name for name in super().get_list_display(request)]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fixed = list(TENANT_FIXED_ONCE_BILLED) if obj is not None and obj.periods.exists() else []
        return [*super().get_readonly_fields(request, obj), *fixed]

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        """Through ``tenant_create`` (limit rules, audit) or ``tenant_update`` (audit)."""
        data = form.cleaned_data
        if change:
            changes = {f: data[f] for f in form.changed_data if f in TENANT_EDITABLE}
            saved = tenant_update(tenant=obj, changes=changes, actor=staff_user(request))
        else:
            fields = {f: data[f] for f in TENANT_EDITABLE if f in data}
            saved = tenant_create(**fields, actor=staff_user(request))
        adopt(obj, saved)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, tenant: Tenant) -> str:
        colour = {"active": "#2f855a", "restricted": "#b7791f", "suspended": "#c53030"}.get(
            tenant.status, "#4a5568"
        )
        return format_html(
            '<span class="cg-badge" style="background:{}">{}</span>',
            colour,
            tenant.get_status_display(),
        )

    @admin.display(description="Pending overage", ordering="pending_total")
    def pending_overage(self, tenant: Tenant) -> str:
        total = getattr(tenant, "pending_total", None)
        if not total:
            return "—"
        return staff_money(round_money(Decimal(total), tenant.currency), tenant.currency)
