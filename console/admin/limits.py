"""Restrictions (lifted with a reason, never deleted) and the cohort defaults of new
tenants' limits."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils import timezone

from console.actions import form_action
from console.admin.common import ServiceSavedAdmin, short_instant, staff_user
from console.forms import ReasonForm
from console.outcomes import restriction_text
from policies.models import (
    CohortDefault,
    Restriction,
)
from policies.services.catalog import (
    cohort_default_delete,
    cohort_default_save,
)
from policies.services.restrictions import restriction_lift


@admin.register(Restriction)
class RestrictionAdmin(admin.ModelAdmin):
    list_display = ["tenant", "scope", "what", "starts", "until", "state", "reason"]
    list_filter = ["kind", "lifted_at"]
    list_select_related = ["tenant", "channel"]
    actions = ["lift"]
    readonly_fields = [f.name for f in Restriction._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # restrictions are applied from the tenant page, with a reason

    @admin.display(description="Channel", ordering="channel")
    def scope(self, restriction: Restriction) -> str:
        return restriction.channel.name if restriction.channel else "All channels"

    @admin.display(description="Restriction", ordering="kind")
    def what(self, restriction: Restriction) -> str:
        if restriction.kind == Restriction.Kind.SUSPEND:
            return "Suspended"
        return f"Throttled to {restriction.limit_units or 0:,} per {restriction.window}"

    @admin.display(description="From", ordering="starts_at")
    def starts(self, restriction: Restriction) -> str:
        return short_instant(restriction.starts_at)

    @admin.display(description="Until", ordering="ends_at")
    def until(self, restriction: Restriction) -> str:
        return short_instant(restriction.ends_at) if restriction.ends_at else "until lifted"

    @admin.display(description="Now")
    def state(self, restriction: Restriction) -> str:
        if restriction.lifted_at is not None:
            return f"lifted {short_instant(restriction.lifted_at)}"
        if restriction.ends_at is not None and restriction.ends_at <= timezone.now():
            return "ended"
        return "in force" if restriction.starts_at <= timezone.now() else "scheduled"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # lifted with a reason, never deleted: they are the tenant's history

    @form_action(
        form_class=ReasonForm,
        title="Lift restrictions",
        description="Lift the selected restrictions",
        permissions=["change"],
        done=lambda restriction, _: f"Lifted: {restriction_text(restriction, restriction.tenant)}",
    )
    def lift(
        self, request: HttpRequest, restriction: Restriction, data: dict[str, Any]
    ) -> Restriction:
        return restriction_lift(
            restriction=restriction, reason=data["reason"], actor=staff_user(request)
        )


@admin.register(CohortDefault)
class CohortDefaultAdmin(ServiceSavedAdmin):
    list_display = ["__str__", "channel", "included_units", "hard_limit", "action"]
    list_select_related = ["channel"]

    def save_with_service(self, obj: CohortDefault, actor: User) -> None:
        cohort_default_save(cohort_default=obj, actor=actor)

    def delete_with_service(self, obj: CohortDefault, actor: User) -> None:
        cohort_default_delete(cohort_default=obj, actor=actor)
