"""Top-up packs, automatic top-ups (saved through their services) and the offers sent to
tenants (read-only: the tenant was notified)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.http import HttpRequest

from console.admin.common import ServiceSavedAdmin
from policies.models import (
    AutoTopUp,
    TopUpOffer,
    TopUpPack,
)
from policies.services.catalog import (
    auto_topup_delete,
    auto_topup_save,
    topup_pack_delete,
    topup_pack_save,
)


@admin.register(TopUpPack)
class TopUpPackAdmin(ServiceSavedAdmin):
    list_display = ["__str__", "channel", "units", "price", "currency", "active"]
    list_select_related = ["channel"]

    def save_with_service(self, obj: TopUpPack, actor: User) -> None:
        topup_pack_save(pack=obj, actor=actor)

    def delete_with_service(self, obj: TopUpPack, actor: User) -> None:
        topup_pack_delete(pack=obj, actor=actor)


@admin.register(AutoTopUp)
class AutoTopUpAdmin(ServiceSavedAdmin):
    list_display = ["__str__", "tenant", "channel", "pack", "threshold_units", "enabled"]
    list_select_related = ["tenant", "channel", "pack__channel"]

    def save_with_service(self, obj: AutoTopUp, actor: User) -> None:
        auto_topup_save(auto_topup=obj, actor=actor)

    def delete_with_service(self, obj: AutoTopUp, actor: User) -> None:
        auto_topup_delete(auto_topup=obj, actor=actor)


@admin.register(TopUpOffer)
class TopUpOfferAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "channel",
        "units",
        "price",
        "currency",
        "source",
        "status",
        "expires_at",
    ]
    list_filter = ["status", "source", "channel"]
    list_select_related = ["tenant", "channel"]
    readonly_fields = [f.name for f in TopUpOffer._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the tenant was notified of it
