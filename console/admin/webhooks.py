"""Webhook endpoints, read-only: which receivers are failing (the start page's queue links
here), their recent deliveries' last error, whose they are. Tenants manage their own
endpoints in the portal or over the API; staff see and tell them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, Max, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from console.admin.common import ReadOnlyAdmin
from console.queues import WEBHOOK_FAILURE_WINDOW, failing_endpoints
from notifications.models import Delivery, WebhookEndpoint


class FailingFilter(admin.SimpleListFilter):
    title = "deliveries"
    parameter_name = "failing"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Failing (last 7 days, or disabled by the receiver)")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]
    ) -> QuerySet[WebhookEndpoint]:
        if self.value() == "yes":
            return queryset.filter(pk__in=failing_endpoints(timezone.now()).values("pk"))
        return queryset


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ["url", "tenant", "active", "failed_recently", "last_failure", "created_at"]
    list_filter = [FailingFilter, "active"]
    list_select_related = ["tenant"]
    search_fields = ["url", "tenant__name", "tenant__slug"]
    fields = readonly_fields = (
        "tenant", "url", "kinds", "active", "disabled_reason", "created_at", "deleted_at",
    )  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        recent = Q(
            deliveries__created_at__gte=timezone.now() - WEBHOOK_FAILURE_WINDOW,
            deliveries__status=Delivery.Status.FAILED,
        )
        return (
            super()
            .get_queryset(request)
            .filter(deleted_at__isnull=True)
            .annotate(
                failed=Count("deliveries", filter=recent),
                failed_at=Max("deliveries__created_at", filter=~Q(deliveries__last_error="")),
            )
        )

    @admin.display(description="Given up (7 days)", ordering="failed")
    def failed_recently(self, endpoint: Any) -> int:
        return int(endpoint.failed)

    @admin.display(description="Last delivery with an error", ordering="failed_at")
    def last_failure(self, endpoint: Any) -> str:
        if endpoint.failed_at is None:
            return "—"
        return f"{endpoint.failed_at:%d %b %Y %H:%M} UTC"
