"""Top-up packs, automatic top-ups (saved through their services) and the offers sent to
tenants (read-only: the tenant was notified)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.http import HttpRequest

from console.admin.common import ServiceSavedAdmin
from console.formats import staff_instant, staff_money
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
    list_display = ["__str__", "channel", "units", "price_text", "active"]
    list_select_related = ["channel"]

    @admin.display(description="Price", ordering="price")
    def price_text(self, pack: TopUpPack) -> str:
        return staff_money(pack.price, pack.currency)

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
        "price_text",
        "source",
        "status",
        "expires",
    ]
    list_filter = ["status", "source", "channel"]
    list_select_related = ["tenant", "channel"]
    readonly_fields = [f.name for f in TopUpOffer._meta.fields]

    @admin.display(description="Price", ordering="price")
    def price_text(self, offer: TopUpOffer) -> str:
        return staff_money(offer.price, offer.currency)

    @admin.display(description="Expires", ordering="expires_at")
    def expires(self, offer: TopUpOffer) -> str:
        return staff_instant(offer.expires_at)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the tenant was notified of it
