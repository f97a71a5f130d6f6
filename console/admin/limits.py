"""Restrictions (lifted with a reason, never deleted) and the cohort defaults of new
tenants' limits."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.http import HttpRequest

from console.actions import form_action
from console.admin.common import ServiceSavedAdmin, staff_user
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
    list_display = [
        "tenant",
        "channel",
        "kind",
        "limit_units",
        "window",
        "starts_at",
        "ends_at",
        "lifted_at",
        "reason",
    ]
    list_filter = ["kind", "lifted_at"]
    list_select_related = ["tenant", "channel"]
    actions = ["lift"]
    readonly_fields = [f.name for f in Restriction._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # restrictions are applied from the tenant page, with a reason

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
