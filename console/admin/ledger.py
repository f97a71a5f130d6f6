"""Billing periods, balances, grants, ledger entries and usage events: written only by the
metering services, shown here and never edited."""

from __future__ import annotations

from django.contrib import admin

from console.admin.common import ReadOnlyAdmin, short_instant
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
        "balance_label",
        "kind",
        "units",
        "drawn_units",
        "priority",
        "expires",
        "created",
    ]
    list_filter = ["kind"]
    list_select_related = ["tenant", "balance__tenant", "balance__channel", "balance__period"]
    search_fields = ["tenant__slug"]

    @admin.display(description="Balance", ordering="balance")
    def balance_label(self, grant: Grant) -> str:
        return channel_and_month(grant.balance)

    @admin.display(description="Expires", ordering="expires_at")
    def expires(self, grant: Grant) -> str:
        return short_instant(grant.expires_at)

    @admin.display(description="Created", ordering="created_at")
    def created(self, grant: Grant) -> str:
        return short_instant(grant.created_at)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "tenant",
        "balance_label",
        "kind",
        "available_delta",
        "used_delta",
        "reserved_delta",
        "event_count",
    ]
    list_filter = ["kind"]
    list_select_related = ["tenant", "balance__tenant", "balance__channel", "balance__period"]
    search_fields = ["tenant__slug"]

    @admin.display(description="Balance", ordering="balance")
    def balance_label(self, entry: LedgerEntry) -> str:
        return channel_and_month(entry.balance)


def channel_and_month(balance: Balance) -> str:
    """A balance beside its tenant's column: "SMS · November 2026"."""
    return f"{balance.channel.name} · {balance.period}"


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
