"""The audit trail, read-only: it is append-only in the database too."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from creditguard.models import AuditEntry


class AuditAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "action", "tenant", "object_type", "reason"]
    list_filter = ["action"]
    search_fields = ["tenant__slug", "actor_label", "reason"]
    list_select_related = ["tenant"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.register(AuditEntry, AuditAdmin)
