"""API keys: looked at and revoked (through ``api_key_revoke``, audited), never created or
edited here (``create_api_key`` issues them and shows the secret once)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from tenants.models import ApiKey
from tenants.services import api_key_revoke


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are issued by ``create_api_key`` (the secret is shown once); here they
    can be looked at and revoked, never created or edited."""

    list_display = [
        "name",
        "tenant",
        "prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "tenant__slug"]
    list_select_related = ["tenant"]
    readonly_fields = [
        "tenant",
        "name",
        "prefix",
        "secret_hash",
        "scopes",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a key is revoked, audited; deleting it would leave no trace

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        assert isinstance(request.user, User)
        revoked = sum(
            api_key_revoke(
                api_key=api_key, actor=request.user, reason="Revoked in the staff console"
            )
            for api_key in queryset.select_related("tenant")
        )
        self.message_user(request, f"{revoked} key(s) revoked.")
