"""The audit trail, read-only: it is append-only in the database too. Each entry names
its target in words ("Overage fee notice · BrightCart"), read for a page of entries in
one query per kind of target."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db import models
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from creditguard.models import AuditEntry


def label_related(model: type[models.Model]) -> list[str]:
    """What an object's label may read: its foreign keys, and theirs (a grant names its
    balance's channel and month), not the people behind them."""
    user = apps.get_model("auth", "User")
    paths = []
    for field in model._meta.concrete_fields:
        related = field.related_model
        if not field.many_to_one or related is None or isinstance(related, str):
            continue
        paths.append(field.name)
        if related is user:
            continue
        paths += [
            f"{field.name}__{inner.name}"
            for inner in related._meta.concrete_fields
            if inner.many_to_one and inner.related_model not in (None, user)
        ]
    return paths


def targets_attach(entries: list[AuditEntry]) -> None:
    """Set ``target`` on each entry: its object, or None when it is gone. One query per
    kind of object among the entries."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        wanted[entry.object_type].add(entry.object_id)
    found: dict[tuple[str, str], models.Model] = {}
    for label, ids in wanted.items():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        keys = [key for key in ids if key.isdigit()] if _integer_key(model) else list(ids)
        queryset = model._default_manager.select_related(*label_related(model))
        for pk, obj in queryset.in_bulk(keys).items():
            found[(label, str(pk))] = obj
    for entry in entries:
        entry.target = found.get((entry.object_type, entry.object_id))  # type: ignore[attr-defined]


def _integer_key(model: type[models.Model]) -> bool:
    return isinstance(model._meta.pk, models.AutoField | models.BigAutoField)


def target_link(entry: AuditEntry) -> str:
    """An entry's target in words, linked to its page when the console has one."""
    if not hasattr(entry, "target"):  # a single entry's page
        targets_attach([entry])
    target = entry.target  # type: ignore[attr-defined]
    if target is None:
        kind = entry.object_type.split(".")[-1]
        return f"{kind} #{entry.object_id} (no longer exists)"
    meta = target._meta
    try:
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[target.pk])
    except NoReverseMatch:
        return str(target)
    return format_html('<a href="{}">{}</a>', url, target)


class AuditChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        targets_attach(list(self.result_list))


class AuditAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "action", "tenant", "target_label", "reason"]
    list_filter = ["action"]
    search_fields = ["tenant__slug", "actor_label", "reason"]
    list_select_related = ["tenant"]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return AuditChangeList

    @admin.display(description="Target")
    def target_label(self, entry: AuditEntry) -> str:
        return target_link(entry)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.register(AuditEntry, AuditAdmin)
