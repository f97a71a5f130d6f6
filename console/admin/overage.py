"""The overage decision queue (policy § 7): pending charges with their factors on screen,
decided with a reason."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from console.actions import form_action
from console.admin.common import staff_user
from console.forms import (
    DecisionForm,
)
from console.outcomes import staff_money
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
        return staff_money(charge.amount, charge.currency)

    @admin.display(description="Final since", ordering="finalized_at")
    def final_since(self, charge: OverageCharge) -> str:
        if charge.finalized_at is None:
            return "period open"
        return f"{(timezone.now() - charge.finalized_at).days} days"

    actions = ["decide"]
    exclude = ["factors"]  # shown as words, factors_table
    readonly_fields = [
        *(f.name for f in OverageCharge._meta.fields if f.name != "factors"),
        "factors_table",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:  # fmt: skip
        """A charge is decided with the action, never saved from its page."""
        context = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False}
        return super().change_view(request, object_id, form_url, context)

    @admin.display(description="Factors")
    def factors_summary(self, charge: OverageCharge) -> str:
        return factors_table(charge)

    @admin.display(description="Factors")
    def factors_table(self, charge: OverageCharge) -> str:
        return factors_table(charge)

    @form_action(
        form_class=DecisionForm,
        title="Decide overage charges",
        description="Decide the selected charges (bill / waive / waive partly)",
        permissions=["change"],
        success="{count} charge(s) decided.",
        context=lambda: {"auto_bill_below": settings.OVERAGE_AUTO_BILL_BELOW},
        done=lambda charge, decided: f"{charge}: {decision_text(decided)}",
    )
    def decide(
        self, request: HttpRequest, charge: OverageCharge, data: dict[str, Any]
    ) -> OverageCharge:
        return overage_decide(
            charge=charge,
            decision=data["decision"],
            waived_amount=data["waived_amount"],
            reason=data["reason"],
            customer_reason=data["customer_reason"].strip(),
            actor=staff_user(request),
        )


def factors_table(charge: OverageCharge) -> str:
    """The factors of a decision (policy § 7) as a small table, in words."""
    factors = charge.factors or {}
    use = factors.get("type_of_use", {})
    relationship = factors.get("relationship", {})
    share = factors.get("system_impact", {}).get("share_of_channel_capacity")
    tenure = relationship.get("tenure_days")
    rows = [
        (
            "Type of use",
            f"{_percent(use.get('share_of_period_usage', 0))} of its usage this period is on "
            "this channel",
        ),
        (
            "Relationship",
            f"{_tenure(tenure)}; billed "
            f"{staff_money(relationship.get('lifetime_billed', 0), charge.currency)}, waived "
            f"{staff_money(relationship.get('lifetime_waived', 0), charge.currency)}; "
            f"{relationship.get('earlier_waivers', 0)} earlier waiver(s)",
        ),
        (
            "System impact",
            "—" if share is None else f"{_percent(share, digits=3)} of the channel's capacity",
        ),
    ]
    return format_html(
        '<table class="console-factors"><tbody>{}</tbody></table>',
        format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
    )


def _tenure(days: int | None) -> str:
    """How long the tenant has been a customer: "A customer for 92 days" (one day, not
    "1 days"); under a day, or unknown, "A new customer (less than a day)"."""
    if days is None or days < 1:
        return "A new customer (less than a day)"
    return f"A customer for {days:,} day{'s' if days != 1 else ''}"


def _percent(share: float, *, digits: int = 0) -> str:
    return f"{100 * float(share):.{digits}f} %"


def decision_text(charge: OverageCharge) -> str:
    """What a decision did: "billed €3.25", "waived €3.25", "€1.00 waived, €2.25 billed"."""
    billed = staff_money(charge.billed_amount, charge.currency)
    waived = staff_money(charge.waived_amount, charge.currency)
    if charge.status == OverageCharge.Status.BILLED:
        return f"billed {billed}"
    if charge.status == OverageCharge.Status.WAIVED:
        return f"waived {waived}"
    return f"{waived} waived, {billed} billed"
