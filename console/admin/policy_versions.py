"""Versions of the fair use policy: drafts, publishing (a material one notifies every
tenant) and who has acknowledged."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from console.admin.common import staff_user
from creditguard.errors import ServiceError
from policies.models import (
    PolicyVersion,
)
from policies.services.policy import policy_version_publish
from tenants.models import Tenant


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    """Versions of the fair use policy; publishing a material one notifies every tenant."""

    list_display = ["label", "effective_from", "material", "published_at", "acknowledged"]
    # The summary beside the date: what customers read before a later version applies
    # (required to publish one that takes effect later).
    fields = [
        "label",
        "effective_from",
        "material",
        "summary_en",
        "summary_de",
        "text_en",
        "text_de",
        "published_at",
        "acknowledgement_report",
    ]
    readonly_fields = ["published_at", "acknowledgement_report"]
    actions = ["publish"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PolicyVersion]:
        return super().get_queryset(request).annotate(acknowledged_count=Count("acknowledgements"))

    @admin.display(description="Acknowledged by")
    def acknowledged(self, version: PolicyVersion) -> str:
        return f"{getattr(version, 'acknowledged_count', 0)} of {Tenant.objects.count()} tenants"

    @admin.display(description="Who has and has not acknowledged")
    def acknowledgement_report(self, version: PolicyVersion) -> str:
        done = set(version.acknowledgements.values_list("tenant_id", flat=True))
        tenants = list(Tenant.objects.exclude(status=Tenant.Status.CLOSED).order_by("name"))
        have = [t.name for t in tenants if t.pk in done]
        missing = [t.name for t in tenants if t.pk not in done]
        return format_html(
            "<p><strong>Acknowledged ({}):</strong> {}</p><p><strong>Not yet ({}):</strong> {}</p>",
            len(have),
            ", ".join(have) or "—",
            len(missing),
            ", ".join(missing) or "—",
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A published version is what tenants were told: it never changes.
        if obj is not None and obj.published_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Nor is it deleted, with the tenants' acknowledgements; a draft may be.
        if obj is not None and obj.published_at is not None:
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(
        description="Publish the selected versions (material ones notify every tenant)",
        permissions=["change"],
    )
    def publish(self, request: HttpRequest, queryset: QuerySet[PolicyVersion]) -> None:
        for version in queryset:
            try:
                notified = policy_version_publish(version=version, actor=staff_user(request))
                self.message_user(request, f"{version}: published, {notified} tenant(s) notified.")
            except ServiceError as exc:
                self.message_user(request, f"{version}: {exc.detail}", messages.ERROR)
