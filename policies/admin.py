"""The staff console in the Django admin: tenants at a glance, limit changes with reasons
and history, restrictions, overage decisions, fee schedules. Every change goes through the
services; ledger, balances and audit rows are read-only here."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from axes.admin import AccessAttemptAdmin as AxesAccessAttemptAdmin
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, DecimalField, Exists, F, OuterRef, QuerySet, Subquery, Sum
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from creditguard.errors import InvalidInput, ServiceError
from creditguard.models import AuditEntry
from creditguard.money import round_money
from metering.levels import NEAR_LIMIT_PERCENT, usage_level, usage_percent
from metering.models import Balance, Channel, Grant
from metering.selectors import balances_for_tenant
from notifications.models import Notification
from policies.console_actions import form_action
from policies.forms import (
    LIMIT_TERMS,
    DecisionForm,
    LimitChangeForm,
    OfferForm,
    ReasonForm,
    ReduceForm,
    RestrictForm,
    TenantForm,
)
from policies.models import (
    AutoTopUp,
    CohortDefault,
    FeeSchedule,
    FeeTier,
    LimitRecommendation,
    LimitRule,
    OverageCharge,
    PolicyVersion,
    Restriction,
    TopUp,
    TopUpOffer,
    TopUpPack,
)
from policies.selectors import effective_rule
from policies.services.catalog import (
    auto_topup_delete,
    auto_topup_save,
    cohort_default_delete,
    cohort_default_save,
    topup_pack_delete,
    topup_pack_save,
)
from policies.services.fees import (
    TierSpec,
    fee_schedule_create,
    fee_schedule_delete,
    fee_schedule_notify,
    fee_schedule_update,
    fee_tiers_validate,
)
from policies.services.overage import overage_decide
from policies.services.policy import policy_version_publish
from policies.services.recommend import recommendation_apply, recommendations_compute
from policies.services.restrictions import restriction_apply, restriction_lift
from policies.services.rules import credits_reduce, limit_rule_set
from policies.services.topups import topup_offer_create
from tenants.admin import MembershipInline
from tenants.models import Tenant
from tenants.services import (
    TENANT_EDITABLE,
    TENANT_FIXED_ONCE_BILLED,
    tenant_create,
    tenant_update,
)


def staff_user(request: HttpRequest) -> User:
    """The signed-in staff member (the admin lets no one else in)."""
    assert isinstance(request.user, User)
    return request.user


def current_balances() -> QuerySet[Balance]:
    now = timezone.now()
    return Balance.objects.filter(
        period__status="open", period__starts_at__lte=now, period__ends_at__gt=now
    )


def recommendation_reason(queryset: QuerySet[LimitRecommendation]) -> dict[str, Any]:
    """The first selected recommendation's explanation, offered as the reason."""
    first = queryset.first()
    if first is None:
        return {}
    return {"reason": f"Recommendation of {first.computed_at:%Y-%m-%d}: {first.explanation}"}


def adopt(obj: Any, saved: Any) -> None:
    """Make the admin's instance the one a service saved, so the admin carries on with it
    (its inlines, its log entry, its redirect)."""
    for model_field in saved._meta.concrete_fields:
        setattr(obj, model_field.attname, getattr(saved, model_field.attname))
    obj._state.adding, obj._state.db = False, saved._state.db


def restrict_from_form(tenant: Tenant, data: dict[str, Any], actor: User) -> Restriction:
    return restriction_apply(
        tenant=tenant,
        channel=data["channel"],
        kind=data["kind"],
        limit_units=data["limit_units"],
        window=data["window"] or "",
        duration=timedelta(hours=data["hours"]) if data["hours"] else None,
        reason=data["reason"],
        actor=actor,
    )


def usage_badges(tenant: Tenant, channels: list[Channel]) -> str:
    """This period's usage of each channel as coloured badges (from the annotations of
    ``TenantAdmin.get_queryset``)."""
    badges = []
    for channel in channels:
        used = getattr(tenant, f"used_{channel.pk}", None)
        available = getattr(tenant, f"available_{channel.pk}", None)
        if used is None:
            continue
        available = available or 0
        percent = usage_percent(used=used, available=available)
        if percent is None:  # nothing available: the badge shows 100 % once anything is used
            percent = 100 if used else 0
        if used > available:
            colour = "#c53030"
        elif usage_level(used=used, available=available) >= NEAR_LIMIT_PERCENT:
            colour = "#b7791f"
        else:
            colour = "#2f855a"
        badges.append((colour, f"{channel.code} {percent} %"))
    if not badges:
        return "—"
    return format_html_join(" ", '<span class="cg-badge" style="background:{}">{}</span>', badges)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LimitRuleInline(ReadOnlyInline):
    model = LimitRule
    verbose_name_plural = "Limit rules (every version; change one with “Change a limit”)"
    fields = readonly_fields = (
        "channel",
        "version",
        "included_units",
        "hard_limit",
        "action",
        "warning_thresholds",
        "effective_from",
        "author",
        "reason",
    )
    ordering = ["channel", "-version"]


class RestrictionInline(ReadOnlyInline):
    model = Restriction
    fk_name = "tenant"
    fields = readonly_fields = (
        "channel",
        "kind",
        "limit_units",
        "window",
        "starts_at",
        "ends_at",
        "reason",
        "author",
        "lifted_at",
        "lift_reason",
    )


class OverageChargeInline(ReadOnlyInline):
    model = OverageCharge
    fields = readonly_fields = (
        "period",
        "channel",
        "units",
        "amount",
        "currency",
        "status",
        "billed_amount",
        "waived_amount",
        "decision_reason",
    )


class GrantInline(ReadOnlyInline):
    model = Grant
    fields = readonly_fields = (
        "created_at",
        "balance",
        "kind",
        "units",
        "drawn_units",
        "reduced_units",
        "priority",
        "expires_at",
        "reason",
    )
    verbose_name_plural = "Grants (included, promotional, purchased)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Grant]:
        return super().get_queryset(request).select_related("balance__channel", "balance__period")


class TopUpInline(ReadOnlyInline):
    model = TopUp
    fields = readonly_fields = ("created_at", "channel", "units", "price", "currency", "automatic")


class NotificationInline(ReadOnlyInline):
    model = Notification
    fields = readonly_fields = ("created_at", "kind", "dedupe_key")
    verbose_name_plural = "Notifications sent"


class AuditInline(ReadOnlyInline):
    model = AuditEntry
    fields = readonly_fields = ("created_at", "actor_label", "action", "reason", "before", "after")
    verbose_name_plural = "Audit trail"


class UsageFilter(admin.SimpleListFilter):
    title = "usage this period"
    parameter_name = "usage"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("near", f"Near a limit (≥ {NEAR_LIMIT_PERCENT} %)"), ("over", "Over a limit")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> QuerySet[Tenant]:
        balances = current_balances().filter(tenant=OuterRef("pk"))
        if self.value() == "near":
            near = balances.filter(
                available__gt=0,
                used__lte=F("available"),
                used__gte=F("available") * NEAR_LIMIT_PERCENT / 100,
            )
            return queryset.filter(Exists(near))
        if self.value() == "over":
            return queryset.filter(Exists(balances.filter(used__gt=F("available"))))
        return queryset


class PendingOverageFilter(admin.SimpleListFilter):
    title = "overage decision"
    parameter_name = "overage"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("pending", "Pending decision")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> QuerySet[Tenant]:
        if self.value() == "pending":
            pending = OverageCharge.objects.filter(tenant=OuterRef("pk"), status="pending")
            return queryset.filter(Exists(pending))
        return queryset


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
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
    change_form_template = "admin/policies/tenant_change_form.html"
    list_per_page = 50
    actions = ["compute_recommendations", "send_offer", "restrict_bulk"]
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
        return f"{round_money(Decimal(total), tenant.currency)} {tenant.currency}" if total else "—"

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
        template: str = "admin/policies/form.html",
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
        if request.method == "POST" and form.is_valid():
            try:
                change = limit_rule_set(
                    tenant=tenant,
                    channel=form.cleaned_data["channel"],
                    reason=form.cleaned_data["reason"],
                    actor=staff_user(request),
                    **form.terms(),
                )
            except ServiceError as exc:
                for error in exc.errors or [{"field": None, "detail": exc.detail}]:
                    form.add_error(
                        error.get("field") if error.get("field") in form.fields else None,
                        error["detail"],
                    )
            else:
                notice = " The tenant has been notified (worse terms)." if change.worsens else ""
                self.message_user(
                    request,
                    f"{form.cleaned_data['channel'].code}: version "
                    f"{change.rule.version} saved.{notice}",
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
            template="admin/policies/limit_form.html",
            balances=[(b, usage_percent(used=b.used, available=b.available)) for b in balances],
        )

    def reduce_view(self, request: HttpRequest, tenant_id: int) -> HttpResponse:
        """Reduce available credits (policy § 5), audited, through ``credits_reduce``."""
        if not request.user.has_perm("policies.add_limitrule"):
            raise PermissionDenied
        tenant = get_object_or_404(Tenant, pk=tenant_id)
        form = ReduceForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                reduced = credits_reduce(
                    tenant=tenant,
                    channel=data["channel"],
                    units=data["units"],
                    reason=data["reason"],
                    actor=staff_user(request),
                )
            except ServiceError as exc:
                form.add_error("units", exc.detail)
            else:
                self.message_user(request, f"{reduced} {data['channel'].code} credits reduced.")
                return HttpResponseRedirect(
                    reverse("admin:tenants_tenant_change", args=[tenant.pk])
                )
        return self._form_page(
            request, tenant, form, title=f"Reduce the credits of {tenant}", submit="Reduce"
        )

    def restrict_view(self, request: HttpRequest, tenant_id: int) -> HttpResponse:
        if not request.user.has_perm("policies.add_restriction"):
            raise PermissionDenied
        tenant = get_object_or_404(Tenant, pk=tenant_id)
        form = RestrictForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                restrict_from_form(tenant, data, staff_user(request))
            except ServiceError as exc:
                form.add_error(None, exc.detail)
            else:
                self.message_user(request, "Restriction applied; the tenant has been notified.")
                return HttpResponseRedirect(
                    reverse("admin:tenants_tenant_change", args=[tenant.pk])
                )
        return self._form_page(
            request, tenant, form, title=f"Restrict or suspend {tenant}", submit="Apply"
        )


@admin.register(LimitRecommendation)
class LimitRecommendationAdmin(admin.ModelAdmin):
    """Suggestions beside the current rule; applied with one click (reason pre-filled)."""

    list_display = [
        "tenant",
        "channel",
        "current_included",
        "suggested_included",
        "suggested_hard_limit",
        "reasons",
        "computed_at",
        "applied_at",
    ]
    list_filter = ["channel", "applied_at"]
    list_select_related = ["tenant", "channel"]
    search_fields = ["tenant__name", "tenant__slug"]
    actions = ["apply"]
    readonly_fields = [f.name for f in LimitRecommendation._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @form_action(
        form_class=ReasonForm,
        title="Apply recommendations",
        description="Apply the selected recommendations",
        permissions=["apply"],
        initial=recommendation_reason,
    )
    def apply(
        self, request: HttpRequest, recommendation: LimitRecommendation, data: dict[str, Any]
    ) -> None:
        recommendation_apply(
            recommendation=recommendation, reason=data["reason"], actor=staff_user(request)
        )

    @admin.display(description="Why")
    def reasons(self, recommendation: LimitRecommendation) -> str:
        text = recommendation.explanation
        short = text if len(text) <= 110 else text[:107] + "…"
        return format_html('<span title="{}">{}</span>', text, short)

    def has_apply_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("policies.add_limitrule")


class ReadyFilter(admin.SimpleListFilter):
    title = "decision"
    parameter_name = "ready"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Ready for a decision (period closed)"), ("open", "Period still open")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[OverageCharge]
    ) -> QuerySet[OverageCharge]:
        if self.value() == "yes":
            return queryset.filter(status="pending", finalized_at__isnull=False)
        if self.value() == "open":
            return queryset.filter(finalized_at__isnull=True)
        return queryset


@admin.register(OverageCharge)
class OverageChargeAdmin(admin.ModelAdmin):
    """The decision queue (policy § 7): pending charges with the factors on screen."""

    list_display = [
        "tenant",
        "channel",
        "period",
        "units",
        "amount_text",
        "status",
        "final_since",
        "factors_summary",
    ]
    list_filter = [ReadyFilter, "status", "channel", "period__label"]
    list_select_related = ["tenant", "channel", "period"]
    search_fields = ["tenant__name", "tenant__slug"]
    ordering = ["status", "-amount"]
    sortable_by = ["amount_text", "final_since", "units", "tenant"]

    @admin.display(description="Amount", ordering="amount")
    def amount_text(self, charge: OverageCharge) -> str:
        return f"{charge.amount} {charge.currency}"

    @admin.display(description="Final since", ordering="finalized_at")
    def final_since(self, charge: OverageCharge) -> str:
        if charge.finalized_at is None:
            return "period open"
        return f"{(timezone.now() - charge.finalized_at).days} days"

    actions = ["decide"]
    readonly_fields = [f.name for f in OverageCharge._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Factors")
    def factors_summary(self, charge: OverageCharge) -> str:
        f = charge.factors or {}
        use, rel, impact = (
            f.get("type_of_use", {}),
            f.get("relationship", {}),
            f.get("system_impact", {}),
        )
        share = impact.get("share_of_channel_capacity")
        return format_html(
            '<span style="white-space:nowrap">use: {} % of its usage<br>relationship: {} days, '
            "billed {}, {} waiver(s)<br>impact: {} of capacity</span>",
            round(100 * use.get("share_of_period_usage", 0)),
            rel.get("tenure_days", 0),
            rel.get("lifetime_billed", "0"),
            rel.get("earlier_waivers", 0),
            "—" if share is None else f"{100 * share:.3f} %",
        )

    @form_action(
        form_class=DecisionForm,
        title="Decide overage charges",
        description="Decide the selected charges (bill / waive / waive partly)",
        permissions=["change"],
        success="{count} charge(s) decided.",
        success_level=messages.SUCCESS,
        context=lambda: {"auto_bill_below": settings.OVERAGE_AUTO_BILL_BELOW},
    )
    def decide(self, request: HttpRequest, charge: OverageCharge, data: dict[str, Any]) -> None:
        overage_decide(
            charge=charge,
            decision=data["decision"],
            waived_amount=data["waived_amount"],
            reason=data["reason"],
            actor=staff_user(request),
        )


@admin.register(Restriction)
class RestrictionAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "channel",
        "kind",
        "limit_units",
        "window",
        "starts_at",
        "ends_at",
        "lifted_at",
        "reason",
    ]
    list_filter = ["kind", "lifted_at"]
    list_select_related = ["tenant", "channel"]
    actions = ["lift"]
    readonly_fields = [f.name for f in Restriction._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # restrictions are applied from the tenant page, with a reason

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # lifted with a reason, never deleted: they are the tenant's history

    @form_action(
        form_class=ReasonForm,
        title="Lift restrictions",
        description="Lift the selected restrictions",
        permissions=["change"],
    )
    def lift(self, request: HttpRequest, restriction: Restriction, data: dict[str, Any]) -> None:
        restriction_lift(restriction=restriction, reason=data["reason"], actor=staff_user(request))


class FeeTierFormSet(BaseInlineFormSet):
    """A schedule's tiers, checked together by the fee service's own rules."""

    def tier_specs(self) -> list[TierSpec]:
        rows = [
            (form.cleaned_data.get("up_to"), form.cleaned_data["unit_price"])
            for form in self.forms
            if form.cleaned_data
            and not form.cleaned_data.get("DELETE")
            and form.cleaned_data.get("unit_price") is not None
        ]
        return sorted(rows, key=lambda row: (row[0] is None, row[0] or 0))

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        try:
            fee_tiers_validate(self.tier_specs())
        except InvalidInput as exc:
            raise ValidationError(exc.detail) from None


class FeeTierInline(admin.TabularInline):
    model = FeeTier
    formset = FeeTierFormSet
    extra = 1


@admin.register(FeeSchedule)
class FeeScheduleAdmin(admin.ModelAdmin):
    """Fee schedules with their tiers inline. A schedule applies to a tenant only once
    notified ("Notify the tenants concerned"); once notified it can no longer change —
    publish a new schedule instead, which is notified before it applies. A schedule and
    its tiers are saved together by ``fee_schedule_create`` / ``fee_schedule_update``,
    which audit them; a draft is deleted by ``fee_schedule_delete``."""

    list_display = ["name", "channel", "tenant", "mode", "currency", "effective_from", "notified"]
    list_filter = ["channel", "mode"]
    inlines = [FeeTierInline]
    actions = ["notify"]
    readonly_fields = ["author", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[FeeSchedule]:
        return super().get_queryset(request).annotate(notified_count=Count("notices"))

    @admin.display(description="Notified tenants")
    def notified(self, schedule: FeeSchedule) -> int:
        return getattr(schedule, "notified_count", 0)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.notices.exists():
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.notices.exists():
            return False  # the tenants were told; charges may refer to it
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: FeeSchedule, form: Any, change: bool) -> None:
        """Nothing yet: the schedule is saved with its tiers, in ``save_related``."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        (tiers,) = [f for f in formsets if isinstance(f, FeeTierFormSet)]
        data = form.cleaned_data
        fields = {
            "channel": data["channel"], "name": data["name"], "tiers": tiers.tier_specs(),
            "currency": data["currency"], "mode": data["mode"], "tenant": data["tenant"],
            "effective_from": data["effective_from"], "reason": data["reason"],
            "actor": staff_user(request),
        }  # fmt: skip
        if change:
            saved = fee_schedule_update(schedule=form.instance, **fields)
        else:
            saved = fee_schedule_create(**fields)
        adopt(form.instance, saved)
        for formset in formsets:  # what the admin's change message reads
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def delete_model(self, request: HttpRequest, obj: FeeSchedule) -> None:
        fee_schedule_delete(schedule=obj, actor=staff_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[FeeSchedule]) -> None:
        for schedule in queryset:
            fee_schedule_delete(schedule=schedule, actor=staff_user(request))

    @admin.action(
        description="Notify the tenants concerned (the schedule then applies)",
        permissions=["change"],
    )
    def notify(self, request: HttpRequest, queryset: QuerySet[FeeSchedule]) -> None:
        for schedule in queryset:
            if not schedule.tiers.exists():
                self.message_user(request, f"{schedule}: add its tiers first.", messages.ERROR)
                continue
            count = fee_schedule_notify(schedule=schedule, actor=staff_user(request))
            self.message_user(request, f"{schedule}: {count} tenant(s) notified.")


class AuditAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "action", "tenant", "object_type", "reason"]
    list_filter = ["action"]
    search_fields = ["tenant__slug", "actor_label", "reason"]
    list_select_related = ["tenant"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.register(AuditEntry, AuditAdmin)


class ServiceSavedAdmin(admin.ModelAdmin):
    """A setting saved and deleted by its service (validated, audited), never by the admin."""

    def save_with_service(self, obj: Any, actor: User) -> None:
        raise NotImplementedError

    def delete_with_service(self, obj: Any, actor: User) -> None:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        self.save_with_service(obj, staff_user(request))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.delete_with_service(obj, staff_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_with_service(obj, staff_user(request))


@admin.register(CohortDefault)
class CohortDefaultAdmin(ServiceSavedAdmin):
    list_display = ["__str__", "channel", "included_units", "hard_limit", "action"]

    def save_with_service(self, obj: CohortDefault, actor: User) -> None:
        cohort_default_save(cohort_default=obj, actor=actor)

    def delete_with_service(self, obj: CohortDefault, actor: User) -> None:
        cohort_default_delete(cohort_default=obj, actor=actor)


@admin.register(TopUpPack)
class TopUpPackAdmin(ServiceSavedAdmin):
    list_display = ["__str__", "channel", "units", "price", "currency", "active"]

    def save_with_service(self, obj: TopUpPack, actor: User) -> None:
        topup_pack_save(pack=obj, actor=actor)

    def delete_with_service(self, obj: TopUpPack, actor: User) -> None:
        topup_pack_delete(pack=obj, actor=actor)


@admin.register(AutoTopUp)
class AutoTopUpAdmin(ServiceSavedAdmin):
    list_display = ["__str__", "tenant", "channel", "pack", "threshold_units", "enabled"]
    list_select_related = ["tenant", "channel", "pack"]

    def save_with_service(self, obj: AutoTopUp, actor: User) -> None:
        auto_topup_save(auto_topup=obj, actor=actor)

    def delete_with_service(self, obj: AutoTopUp, actor: User) -> None:
        auto_topup_delete(auto_topup=obj, actor=actor)


@admin.register(TopUpOffer)
class TopUpOfferAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "channel",
        "units",
        "price",
        "currency",
        "source",
        "status",
        "expires_at",
    ]
    list_filter = ["status", "source", "channel"]
    list_select_related = ["tenant", "channel"]
    readonly_fields = [f.name for f in TopUpOffer._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the tenant was notified of it


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    """Versions of the fair use policy; publishing a material one notifies every tenant."""

    list_display = ["label", "effective_from", "material", "published_at", "acknowledged"]
    readonly_fields = ["published_at", "acknowledgement_report"]
    actions = ["publish"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PolicyVersion]:
        return super().get_queryset(request).annotate(acknowledged_count=Count("acknowledgements"))

    @admin.display(description="Acknowledged by")
    def acknowledged(self, version: PolicyVersion) -> str:
        return f"{getattr(version, 'acknowledged_count', 0)} of {Tenant.objects.count()} tenants"

    @admin.display(description="Who has and has not acknowledged")
    def acknowledgement_report(self, version: PolicyVersion) -> str:
        done = set(version.acknowledgements.values_list("tenant_id", flat=True))
        tenants = list(Tenant.objects.exclude(status=Tenant.Status.CLOSED).order_by("name"))
        have = [t.name for t in tenants if t.pk in done]
        missing = [t.name for t in tenants if t.pk not in done]
        return format_html(
            "<p><strong>Acknowledged ({}):</strong> {}</p><p><strong>Not yet ({}):</strong> {}</p>",
            len(have),
            ", ".join(have) or "—",
            len(missing),
            ", ".join(missing) or "—",
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A published version is what tenants were told: it never changes.
        if obj is not None and obj.published_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Nor is it deleted, with the tenants' acknowledgements; a draft may be.
        if obj is not None and obj.published_at is not None:
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(
        description="Publish the selected versions (material ones notify every tenant)",
        permissions=["change"],
    )
    def publish(self, request: HttpRequest, queryset: QuerySet[PolicyVersion]) -> None:
        for version in queryset:
            try:
                notified = policy_version_publish(version=version, actor=staff_user(request))
                self.message_user(request, f"{version}: published, {notified} tenant(s) notified.")
            except ServiceError as exc:
                self.message_user(request, f"{version}: {exc.detail}", messages.ERROR)


class AccessAttemptAdmin(AxesAccessAttemptAdmin):
    """django-axes' lockouts, with its one action declaring a permission like every other
    action of the console (axes declares none, so anyone who may see the list could run it)."""

    @admin.action(description="Clean up expired attempts", permissions=["delete"])
    def cleanup_expired_attempts(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        # axes measures the cool-off from the time of a login attempt, which only its login
        # handling sets on the request; without it the action fails with a 500 (axes 8.3).
        request.axes_attempt_time = timezone.now()  # type: ignore[attr-defined]
        super().cleanup_expired_attempts(request, queryset)


if admin.site.is_registered(AccessAttempt):  # unless AXES_ENABLE_ADMIN is off
    admin.site.unregister(AccessAttempt)
    admin.site.register(AccessAttempt, AccessAttemptAdmin)
