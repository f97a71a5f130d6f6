"""The tenants' list: this period's usage per channel as badges, and the filters by usage
and by pending overage."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Exists, F, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html_join

from metering.levels import NEAR_LIMIT_PERCENT, near_limit_q, usage_level, usage_percent
from metering.models import Balance, Channel
from policies.models import (
    OverageCharge,
)
from tenants.models import Tenant


def current_balances() -> QuerySet[Balance]:
    now = timezone.now()
    return Balance.objects.filter(
        period__status="open", period__starts_at__lte=now, period__ends_at__gt=now
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
        badges.append((colour, f"{channel.name} {percent} %"))
    if not badges:
        return "—"
    return format_html_join(" ", '<span class="cg-badge" style="background:{}">{}</span>', badges)


class UsageFilter(admin.SimpleListFilter):
    title = "usage this period"
    parameter_name = "usage"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("near", f"Near a limit (≥ {NEAR_LIMIT_PERCENT} %)"), ("over", "Over a limit")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> QuerySet[Tenant]:
        balances = current_balances().filter(tenant=OuterRef("pk"))
        if self.value() == "near":
            return queryset.filter(Exists(balances.filter(near_limit_q())))
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
