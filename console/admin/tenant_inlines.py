"""What a tenant's page shows below its profile: members, rule versions, restrictions,
charges, grants, top-ups, notifications and its audit trail, read-only."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from console.admin.common import ReadOnlyInline
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


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


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
