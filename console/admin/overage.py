"""The overage decision queue (policy § 7): pending charges with their factors on screen,
decided with a reason."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from console.actions import form_action
from console.admin.common import staff_user
from console.forms import (
    DecisionForm,
)
from policies.models import (
    OverageCharge,
)
from policies.services.overage import overage_decide


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
            customer_reason=data["customer_reason"].strip(),
            actor=staff_user(request),
        )
