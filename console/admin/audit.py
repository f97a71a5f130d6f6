"""The audit trail, read-only: it is append-only in the database too. Each entry names
its target in words ("Overage fee notice · BrightCart"), its action as a label ("Top-up
offer created") and what changed as a table with the objects it refers to by name, read
for a page of entries in one query per kind of target and of object referred to."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from console.audit_text import changes_table, label_related, references_attach
from console.formats import staff_instant
from creditguard.audit_labels import action_label
from creditguard.models import AuditEntry


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
        entries = list(self.result_list)
        targets_attach(entries)
        references_attach(entries)


class ActionFilter(admin.SimpleListFilter):
    """The actions recorded, by their labels (one query, as the admin's own filter)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        codes = AuditEntry.objects.order_by().values_list("action", flat=True).distinct()
        return sorted(((code, action_label(code)) for code in codes), key=lambda c: c[1])

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEntry]) -> QuerySet[Any]:
        return queryset.filter(action=self.value()) if self.value() else queryset


class AuditAdmin(admin.ModelAdmin):
    list_display = [
        "when", "actor_label", "action_text", "tenant", "target_label", "changes", "reason",
    ]  # fmt: skip
    list_filter = [ActionFilter]
    search_fields = ["tenant__slug", "actor_label", "reason"]
    list_select_related = ["tenant"]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return AuditChangeList

    @admin.display(description="When", ordering="created_at")
    def when(self, entry: AuditEntry) -> str:
        return staff_instant(entry.created_at)

    @admin.display(description="Action", ordering="action")
    def action_text(self, entry: AuditEntry) -> str:
        return action_label(entry.action)

    @admin.display(description="Changes")
    def changes(self, entry: AuditEntry) -> str:
        if not hasattr(entry, "names"):  # a single entry's page
            references_attach([entry])
        return changes_table(entry)

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
