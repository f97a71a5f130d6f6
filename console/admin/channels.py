"""Channels, saved and deleted by their services (validated, audited)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from console.admin.common import staff_user
from metering.models import Channel
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
