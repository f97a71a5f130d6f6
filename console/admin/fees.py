"""Fee schedules with their tiers inline, saved, deleted and notified through the fee services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from console.admin.common import adopt, staff_user
from creditguard.errors import InvalidInput
from policies.models import (
    FeeSchedule,
    FeeTier,
)
from policies.services.fees import (
    TierSpec,
    fee_schedule_create,
    fee_schedule_delete,
    fee_schedule_notify,
    fee_schedule_update,
    fee_tiers_validate,
)


class FeeTierFormSet(BaseInlineFormSet):
    """A schedule's tiers, checked together by the fee service's own rules."""

    def tier_specs(self) -> list[TierSpec]:
        rows = [
            (form.cleaned_data.get("up_to"), form.cleaned_data["unit_price"])
            for form in self.forms
            if form.cleaned_data
            and not form.cleaned_data.get("DELETE")
            and form.cleaned_data.get("unit_price") is not None
        ]
        return sorted(rows, key=lambda row: (row[0] is None, row[0] or 0))

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        try:
            fee_tiers_validate(self.tier_specs())
        except InvalidInput as exc:
            raise ValidationError(exc.detail) from None


class FeeTierInline(admin.TabularInline):
    model = FeeTier
    formset = FeeTierFormSet
    extra = 1


@admin.register(FeeSchedule)
class FeeScheduleAdmin(admin.ModelAdmin):
    """Fee schedules with their tiers inline. A schedule applies to a tenant only once
    notified ("Notify the tenants concerned"); once notified it can no longer change —
    publish a new schedule instead, which is notified before it applies. A schedule and
    its tiers are saved together by ``fee_schedule_create`` / ``fee_schedule_update``,
    which audit them; a draft is deleted by ``fee_schedule_delete``."""

    list_display = ["name", "channel", "tenant", "mode", "currency", "effective_from", "notified"]
    list_filter = ["channel", "mode"]
    list_select_related = ["channel", "tenant"]
    inlines = [FeeTierInline]
    actions = ["notify"]
    readonly_fields = ["author", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[FeeSchedule]:
        return super().get_queryset(request).annotate(notified_count=Count("notices"))

    @admin.display(description="Notified tenants")
    def notified(self, schedule: FeeSchedule) -> int:
        return getattr(schedule, "notified_count", 0)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.notices.exists():
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.notices.exists():
            return False  # the tenants were told; charges may refer to it
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: FeeSchedule, form: Any, change: bool) -> None:
        """Nothing yet: the schedule is saved with its tiers, in ``save_related``."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        (tiers,) = [f for f in formsets if isinstance(f, FeeTierFormSet)]
        data = form.cleaned_data
        fields = {
            "channel": data["channel"], "name": data["name"], "tiers": tiers.tier_specs(),
            "currency": data["currency"], "mode": data["mode"], "tenant": data["tenant"],
            "effective_from": data["effective_from"], "reason": data["reason"],
            "actor": staff_user(request),
        }  # fmt: skip
        if change:
            saved = fee_schedule_update(schedule=form.instance, **fields)
        else:
            saved = fee_schedule_create(**fields)
        adopt(form.instance, saved)
        for formset in formsets:  # what the admin's change message reads
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def delete_model(self, request: HttpRequest, obj: FeeSchedule) -> None:
        fee_schedule_delete(schedule=obj, actor=staff_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[FeeSchedule]) -> None:
        for schedule in queryset:
            fee_schedule_delete(schedule=schedule, actor=staff_user(request))

    @admin.action(
        description="Notify the tenants concerned (the schedule then applies)",
        permissions=["change"],
    )
    def notify(self, request: HttpRequest, queryset: QuerySet[FeeSchedule]) -> None:
        for schedule in queryset:
            if not schedule.tiers.exists():
                self.message_user(request, f"{schedule}: add its tiers first.", messages.ERROR)
                continue
            count = fee_schedule_notify(schedule=schedule, actor=staff_user(request))
            self.message_user(request, f"{schedule}: {count} tenant(s) notified.")
