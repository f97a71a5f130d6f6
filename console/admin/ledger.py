"""Billing periods, balances, grants, ledger entries and usage events: written only by the
metering services, shown here and never edited."""

from __future__ import annotations

from django.contrib import admin

from console.admin.common import ReadOnlyAdmin
from metering.models import Balance, BillingPeriod, Grant, LedgerEntry, UsageEvent


@admin.register(BillingPeriod)
class BillingPeriodAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "label", "starts_at", "ends_at", "status", "closed_at"]
    list_filter = ["status", "label"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__slug", "tenant__name"]


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "channel", "period", "available", "used", "reserved", "updated_at"]
    list_filter = ["channel", "period__label"]
    list_select_related = ["tenant", "channel", "period"]
    search_fields = ["tenant__slug", "tenant__name"]


@admin.register(Grant)
class GrantAdmin(ReadOnlyAdmin):
    list_display = [
        "tenant",
        "balance",
        "kind",
        "units",
        "drawn_units",
        "priority",
        "expires_at",
        "created_at",
    ]
    list_filter = ["kind"]
    # The balance's label names its tenant, channel and month.
    list_select_related = ["tenant", "balance__tenant", "balance__channel", "balance__period"]
    search_fields = ["tenant__slug"]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "tenant",
        "balance",
        "kind",
        "available_delta",
        "used_delta",
        "reserved_delta",
        "event_count",
    ]
    list_filter = ["kind"]
    list_select_related = ["tenant", "balance__tenant", "balance__channel", "balance__period"]
    search_fields = ["tenant__slug"]


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = [
        "client_event_id",
        "tenant",
        "channel",
        "quantity",
        "occurred_at",
        "received_at",
    ]
    list_filter = ["channel"]
    list_select_related = ["tenant", "channel"]
    search_fields = ["client_event_id", "tenant__slug"]
    show_full_result_count = False
