"""Limit recommendations beside the current rule, applied with a reason (pre-filled from the
explanation)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from console.actions import form_action
from console.admin.common import staff_user
from console.forms import (
    ReasonForm,
)
from policies.models import (
    LimitRecommendation,
)
from policies.services.recommend import recommendation_apply


def recommendation_reason(queryset: QuerySet[LimitRecommendation]) -> dict[str, Any]:
    """The first selected recommendation's explanation, offered as the reason."""
    first = queryset.first()
    if first is None:
        return {}
    return {"reason": f"Recommendation of {first.computed_at:%Y-%m-%d}: {first.explanation}"}


@admin.register(LimitRecommendation)
class LimitRecommendationAdmin(admin.ModelAdmin):
    """Suggestions beside the current rule; applied with one click (reason pre-filled)."""

    list_display = [
        "tenant",
        "channel",
        "current_included",
        "suggested_included",
        "suggested_hard_limit",
        "reasons",
        "computed_at",
        "applied_at",
    ]
    list_filter = ["channel", "applied_at"]
    list_select_related = ["tenant", "channel"]
    search_fields = ["tenant__name", "tenant__slug"]
    actions = ["apply"]
    readonly_fields = [f.name for f in LimitRecommendation._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @form_action(
        form_class=ReasonForm,
        title="Apply recommendations",
        description="Apply the selected recommendations",
        permissions=["apply"],
        initial=recommendation_reason,
    )
    def apply(
        self, request: HttpRequest, recommendation: LimitRecommendation, data: dict[str, Any]
    ) -> None:
        recommendation_apply(
            recommendation=recommendation, reason=data["reason"], actor=staff_user(request)
        )

    @admin.display(description="Why")
    def reasons(self, recommendation: LimitRecommendation) -> str:
        text = recommendation.explanation
        short = text if len(text) <= 110 else text[:107] + "…"
        return format_html('<span title="{}">{}</span>', text, short)

    def has_apply_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("policies.add_limitrule")
