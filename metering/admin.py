from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from metering.models import Balance, BillingPeriod, Channel, Grant, LedgerEntry, UsageEvent
from metering.services.channels import channel_delete, channel_save


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    """Channels are saved and deleted by their services (validated, audited), from the
    change page and from the list's "active" column alike."""

    list_display = [
        "code", "name", "name_de", "unit", "unit_de", "active", "capacity_per_day",
        "default_included_units",
    ]  # fmt: skip
    list_editable = ["active"]
    search_fields = ["code", "name", "name_de"]

    def save_model(self, request: HttpRequest, obj: Channel, form: Any, change: bool) -> None:
        channel_save(channel=obj, actor=staff_user(request))

    def delete_model(self, request: HttpRequest, obj: Channel) -> None:
        channel_delete(channel=obj, actor=staff_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            channel_delete(channel=channel, actor=staff_user(request))


def staff_user(request: HttpRequest) -> User:
    """The signed-in staff member (the admin lets no one else in)."""
    assert isinstance(request.user, User)
    return request.user


class ReadOnlyAdmin(admin.ModelAdmin):
    """The ledger is changed only by services; the admin shows it and never edits it."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
    list_select_related = ["tenant", "balance__channel", "balance__period"]
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
    list_select_related = ["tenant", "balance__channel", "balance__period"]
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
