"""Limit recommendations beside the current rule, applied with a reason (pre-filled from the
explanation)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html

from console.actions import form_action
from console.admin.common import staff_user
from console.forms import RecommendationApplyForm
from console.queues import RECOMMENDATION_GAP_PERCENT, recommendations_far_from_limit
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


class FarFromLimitFilter(admin.SimpleListFilter):
    """The start page's queue: the latest unapplied recommendations far from the limit."""

    title = "suggestion"
    parameter_name = "gap"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        gap = RECOMMENDATION_GAP_PERCENT
        return [("yes", f"Latest, unapplied, more than {gap} % from the limit in force")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[LimitRecommendation]
    ) -> QuerySet[LimitRecommendation]:
        if self.value() == "yes":
            far = recommendations_far_from_limit(timezone.now())
            return queryset.filter(pk__in=far.values("pk"))
        return queryset


@admin.register(LimitRecommendation)
class LimitRecommendationAdmin(admin.ModelAdmin):
    """Suggestions beside the current rule; applied with one click (reason pre-filled)."""

    list_display = [
        "tenant",
        "channel",
        "included_change",
        "ceiling",
        "trend",
        "reasons",
        "computed_on",
        "applied",
    ]
    list_filter = [FarFromLimitFilter, "channel", "applied_at"]
    list_select_related = ["tenant", "channel"]
    search_fields = ["tenant__name", "tenant__slug"]
    actions = ["apply"]
    readonly_fields = [
        *(
            "trend" if f.name == "own_trend" else "load" if f.name == "system_load" else f.name
            for f in LimitRecommendation._meta.fields
        ),
    ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:  # fmt: skip
        """A recommendation is applied with the action, never saved from its page."""
        context = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False}
        return super().change_view(request, object_id, form_url, context)

    @admin.display(description="Included now → suggested", ordering="suggested_included")
    def included_change(self, recommendation: LimitRecommendation) -> str:
        return f"{recommendation.current_included:,} → {recommendation.suggested_included:,}"

    @admin.display(description="Ceiling", ordering="suggested_hard_limit")
    def ceiling(self, recommendation: LimitRecommendation) -> str:
        return f"{recommendation.suggested_hard_limit:,}"

    @admin.display(description="Computed", ordering="computed_at")
    def computed_on(self, recommendation: LimitRecommendation) -> str:
        return f"{recommendation.computed_at:%d %b %Y}"

    @admin.display(description="Applied", boolean=True, ordering="applied_at")
    def applied(self, recommendation: LimitRecommendation) -> bool:
        return recommendation.applied_at is not None

    @admin.display(description="Trend / month", ordering="own_trend")
    def trend(self, recommendation: LimitRecommendation) -> str:
        """Monthly growth as a signed percentage ("+12.9 %")."""
        if recommendation.own_trend is None:
            return "—"
        return f"{100 * recommendation.own_trend:+.1f} %"

    @admin.display(description="System load")
    def load(self, recommendation: LimitRecommendation) -> str:
        if recommendation.system_load is None:
            return "—"
        return f"{100 * recommendation.system_load:.1f} % of the channel's daily capacity"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @form_action(
        form_class=RecommendationApplyForm,
        title="Apply recommendations",
        description="Apply the selected recommendations",
        permissions=["apply"],
        initial=recommendation_reason,
        done=lambda recommendation, _: (
            f"Applied to {recommendation.tenant} on {recommendation.channel.name}: "
            f"{recommendation.suggested_included:,} included credits a period, a ceiling "
            f"{recommendation.suggested_hard_limit:,} beyond them"
        ),
    )
    def apply(
        self, request: HttpRequest, recommendation: LimitRecommendation, data: dict[str, Any]
    ) -> LimitRecommendation:
        return recommendation_apply(
            recommendation=recommendation, reason=data["reason"], actor=staff_user(request)
        )

    @admin.display(description="Why")
    def reasons(self, recommendation: LimitRecommendation) -> str:
        text = recommendation.explanation
        short = text if len(text) <= 180 else text[:177] + "…"  # the whole on hover
        return format_html('<span title="{}">{}</span>', text, short)

    def has_apply_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("policies.add_limitrule")
