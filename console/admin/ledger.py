"""Billing periods, balances, grants, ledger entries and usage events: written only by the
metering services, shown here and never edited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property

from console.admin.common import ReadOnlyAdmin, short_instant
from metering.models import Balance, BillingPeriod, Grant, LedgerEntry, UsageEvent

# Usage events and ledger entries grow without bound (partitioned by month on PostgreSQL):
# their lists show recent months unless staff ask for more, and are not counted row by row.
EXACT_COUNT_UP_TO = 10_000


class EstimatedCountPaginator(Paginator):
    """Counts exactly only what is small: past ``EXACT_COUNT_UP_TO`` rows by the
    planner's estimate (PostgreSQL's EXPLAIN), so a page of 50 million rows does not
    read them all to print the number of pages."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if connection.vendor != "postgresql" or not isinstance(queryset, QuerySet):
            return super().count
        sql, params = queryset.order_by().values("pk").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            estimate = int(cursor.fetchone()[0][0]["Plan"]["Plan Rows"])
        if estimate > EXACT_COUNT_UP_TO:
            return estimate
        return int(queryset.count())


class RecentMonthsFilter(admin.SimpleListFilter):
    """By the time column of a partitioned table: the last two months by default (two or
    three partitions read), a year, or everything."""

    title = "period"
    parameter_name = "recent"
    field = "created_at"
    CHOICES = {"2m": ("Last 2 months", 62), "12m": ("Last 12 months", 366), "all": ("All", None)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in self.CHOICES.items()]

    def choices(self, changelist: Any) -> Any:
        current = self.value() or "2m"  # no "All" without a choice: the recent months
        for key, (label, _) in self.CHOICES.items():
            yield {
                "selected": current == key,
                "query_string": changelist.get_query_string({self.parameter_name: key}),
                "display": label,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        _, days = self.CHOICES.get(self.value() or "2m", self.CHOICES["2m"])
        if days is None:
            return queryset
        since = timezone.now() - timedelta(days=days)
        return queryset.filter(**{f"{self.field}__gte": since})


class RecentEventsFilter(RecentMonthsFilter):
    field = "occurred_at"


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
    list_filter = [RecentMonthsFilter, "kind"]
    list_select_related = ["tenant", "balance__tenant", "balance__channel", "balance__period"]
    search_fields = ["tenant__slug"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False

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
    list_filter = [RecentEventsFilter, "channel"]
    list_select_related = ["tenant", "channel"]
    search_fields = ["client_event_id", "tenant__slug"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
