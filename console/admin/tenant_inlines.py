"""What a tenant's page shows below its profile: its members (saved through the
membership services), then rule versions, restrictions, charges, grants, top-ups,
notifications and its audit trail, read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from console.admin.common import ReadOnlyInline, staff_user
from console.audit_text import changes_table
from console.formats import staff_instant, staff_money
from creditguard.audit_labels import action_label
from creditguard.models import AuditEntry
from metering.models import Grant
from notifications.models import Notification
from policies.models import (
    LimitRule,
    OverageCharge,
    Restriction,
    TopUp,
)
from tenants.models import Membership
from tenants.services import membership_add, membership_change_role, membership_remove


class MembershipFormSet(BaseInlineFormSet):
    """A tenant's members, saved through the membership services (validated, audited),
    never by the formset itself. The user of an existing member is fixed: another user is
    another member (remove one, add the other)."""

    actor: User | None = None  # the staff member, set per request by ``MembershipInline``

    def add_fields(self, form: Any, index: int | None) -> None:
        super().add_fields(form, index)
        if form.instance.pk is not None:
            form.fields["user"].disabled = True

    def save_new(self, form: Any, commit: bool = True) -> Membership:
        data = form.cleaned_data
        return membership_add(
            tenant=self.instance, user=data["user"], role=data["role"], actor=self.actor
        )

    def save_existing(self, form: Any, obj: Membership, commit: bool = True) -> Membership:
        return membership_change_role(
            membership=obj, role=form.cleaned_data["role"], actor=self.actor
        )

    def delete_existing(self, obj: Membership, commit: bool = True) -> None:
        membership_remove(membership=obj, actor=self.actor)


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    extra = 0
    autocomplete_fields = ["user"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).select_related("user", "tenant")  # row labels

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        """The formset class of this request, carrying its staff member: a class per
        request, because one admin instance serves every thread."""
        formset = super().get_formset(request, obj, **kwargs)
        return type(formset.__name__, (formset,), {"actor": staff_user(request)})


class LimitRuleInline(ReadOnlyInline):
    model = LimitRule
    related = ("tenant", "channel", "author")
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
    related = ("tenant", "channel", "author")
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
    related = ("tenant", "channel", "period")
    fields = readonly_fields = (
        "period",
        "channel",
        "units",
        "amount_text",
        "status",
        "billed_text",
        "waived_text",
        "decision_reason",
    )

    @admin.display(description="Amount")
    def amount_text(self, charge: OverageCharge) -> str:
        return staff_money(charge.amount, charge.currency)

    @admin.display(description="Billed")
    def billed_text(self, charge: OverageCharge) -> str:
        return staff_money(charge.billed_amount, charge.currency)

    @admin.display(description="Waived")
    def waived_text(self, charge: OverageCharge) -> str:
        return staff_money(charge.waived_amount, charge.currency)


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
    related = ("tenant", "balance__tenant", "balance__channel", "balance__period")


class TopUpInline(ReadOnlyInline):
    model = TopUp
    related = ("tenant", "channel")
    fields = readonly_fields = ("bought", "channel", "units", "price_text", "automatic")

    @admin.display(description="Bought")
    def bought(self, topup: TopUp) -> str:
        return staff_instant(topup.created_at)

    @admin.display(description="Price")
    def price_text(self, topup: TopUp) -> str:
        return staff_money(topup.price, topup.currency)


class NotificationInline(ReadOnlyInline):
    model = Notification
    related = ("tenant",)
    fields = readonly_fields = ("created_at", "kind", "dedupe_key")
    verbose_name_plural = "Notifications sent"


class AuditInline(ReadOnlyInline):
    """The tenant's audit trail: each action as a label and what changed as a table. The
    audit list names each entry's target and the objects it refers to (one query per
    kind), which this page, read in a fixed number of queries, cannot afford: here the
    tenant is named (read with each entry), other objects are "Balance #23"."""

    model = AuditEntry
    related = ("tenant",)
    fields = readonly_fields = ("when", "actor_label", "action_text", "reason", "changes")
    verbose_name_plural = "Audit trail"

    @admin.display(description="When")
    def when(self, entry: AuditEntry) -> str:
        return staff_instant(entry.created_at)

    @admin.display(description="Action")
    def action_text(self, entry: AuditEntry) -> str:
        return action_label(entry.action)

    @admin.display(description="Changes")
    def changes(self, entry: AuditEntry) -> str:
        known = (
            {("tenants.tenant", str(entry.tenant_id)): str(entry.tenant)} if entry.tenant else {}
        )
        return changes_table(entry, known)
