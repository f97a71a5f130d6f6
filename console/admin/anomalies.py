"""Anomaly alerts (policy § 2): the watch's alerts, active ones first, each with the rate
against the tenant's normal ("14× normal"), its share of the channel's capacity and its
age; the alert's page shows the evidence as a chart and lets staff confirm it (keeping the
throttle, or applying one), extend the throttle, or lift it — through
``policies.services.anomaly_actions``, audited, the customer told where a throttle starts,
moves or ends. Every role sees the alerts; acting needs ``policies.change_anomalyalert``
(Support and Administrators)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.timesince import timesince

from console.admin.common import staff_user
from console.anomaly_chart import evidence_svg
from console.formats import staff_instant
from creditguard.errors import ServiceError
from policies.models import AnomalyAlert, Restriction
from policies.services.anomaly_actions import (
    anomaly_alert_confirm,
    anomaly_alert_extend,
    anomaly_alert_lift,
    throttle_in_force,
)

ACT_PERMISSION = "policies.change_anomalyalert"
HOURS = [
    (1, "1 hour"),
    (2, "2 hours"),
    (4, "4 hours"),
    (8, "8 hours"),
    (24, "1 day"),
    (72, "3 days"),
]


def _reason_field() -> forms.CharField:
    return forms.CharField(
        max_length=2000, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Internal: kept in the audit trail, never sent.",
    )  # fmt: skip


class ConfirmForm(forms.Form):
    def __init__(self, *args: Any, throttle: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "confirm_%s")
        super().__init__(*args, **kwargs)
        if throttle:  # a throttle holds: confirming keeps it, nothing to choose
            for name in ("apply_throttle", "throttle_units", "hours"):
                del self.fields[name]

    reason = _reason_field()
    apply_throttle = forms.BooleanField(
        required=False, label="Apply a throttle",
        help_text="Caps the channel per hour; the customer is sent why, in their language.",
    )  # fmt: skip
    throttle_units = forms.IntegerField(
        required=False, min_value=0, max_value=10**12, label="Units per hour"
    )
    hours = forms.TypedChoiceField(choices=HOURS, coerce=int, initial=2, label="For")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("apply_throttle") and data.get("throttle_units") is None:
            self.add_error("throttle_units", "How many units per hour the throttle allows.")
        return data


class ExtendForm(forms.Form):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "extend_%s")
        super().__init__(*args, **kwargs)

    hours = forms.TypedChoiceField(choices=HOURS, coerce=int, initial=4, label="Extend by")
    reason = _reason_field()


class LiftForm(forms.Form):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "lift_%s")
        super().__init__(*args, **kwargs)

    reason = _reason_field()


def _when(moment: datetime | None) -> str:
    return staff_instant(moment)


def _throttle_words(restriction: Restriction) -> str:
    return (
        f"{restriction.limit_units} units per {restriction.window}"
        f"{f' until {_when(restriction.ends_at)}' if restriction.ends_at else ' (permanent)'}"
    )


@admin.register(AnomalyAlert)
class AnomalyAlertAdmin(admin.ModelAdmin):
    list_display = [
        "tenant", "channel", "status", "rate_vs_normal", "rate_per_hour", "capacity",
        "throttle", "age",
    ]  # fmt: skip
    list_display_links = ["tenant", "rate_vs_normal"]
    list_filter = ["status", "channel"]
    list_select_related = ["tenant", "channel", "restriction"]
    search_fields = ["tenant__name", "tenant__slug"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AnomalyAlert]:
        # Active alerts first, newest first within each.
        return (
            super()
            .get_queryset(request)
            .annotate(
                ended=Case(
                    When(status__in=AnomalyAlert.ACTIVE, then=Value(0)),
                    default=Value(1),
                    output_field=IntegerField(),
                )
            )
            .order_by("ended", "-opened_at")
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the watch opens alerts

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # worked and closed, never deleted: the tenant's history

    @admin.display(description="Rate vs normal", ordering="ratio")
    def rate_vs_normal(self, alert: AnomalyAlert) -> str:
        return f"{alert.ratio:.0f}× normal" if alert.ratio >= 2 else f"{alert.ratio:.1f}× normal"

    @admin.display(description="Units in the hour (normal)", ordering="rate")
    def rate_per_hour(self, alert: AnomalyAlert) -> str:
        return f"{alert.rate:,} ({alert.baseline:,.0f})"

    @admin.display(description="Share of capacity", ordering="capacity_share")
    def capacity(self, alert: AnomalyAlert) -> str:
        return "—" if alert.capacity_share is None else f"{alert.capacity_share * 100:.1f} %"

    @admin.display(description="Throttle")
    def throttle(self, alert: AnomalyAlert) -> str:
        restriction = throttle_in_force(alert, now=timezone.now())
        return _throttle_words(restriction) if restriction else "none"

    @admin.display(description="Age", ordering="opened_at")
    def age(self, alert: AnomalyAlert) -> str:
        return f"{timesince(alert.opened_at)} ago"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(
            request, {"title": "Anomaly alerts: active first", **(extra_context or {})}
        )

    def get_urls(self) -> list[Any]:
        return [
            path(
                f"<int:alert_id>/{name}/",
                self.admin_site.admin_view(getattr(self, f"{name}_view")),
                name=f"policies_anomalyalert_{name}",
            )
            for name in ("confirm", "extend", "lift")
        ] + super().get_urls()

    # ------------------------------------------------------------ the alert's page

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:  # fmt: skip
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            alert_id = int(object_id)
        except ValueError:
            raise Http404 from None
        return self._page(request, self._alert(alert_id))

    def _alert(self, alert_id: int) -> AnomalyAlert:
        return get_object_or_404(
            AnomalyAlert.objects.select_related("tenant", "channel", "restriction", "acted_by"),
            pk=alert_id,
        )

    def _page(
        self, request: HttpRequest, alert: AnomalyAlert, status: int = 200, **bound: forms.Form
    ) -> TemplateResponse:
        now = timezone.now()
        restriction = throttle_in_force(alert, now=now)
        may_act = alert.status in AnomalyAlert.ACTIVE and request.user.has_perm(ACT_PERMISSION)
        suggested = max(
            int(settings.ANOMALY_SPIKE_FACTOR * alert.baseline), settings.ANOMALY_MIN_RATE
        )
        forms_shown: dict[str, forms.Form | None] = {
            "confirm_form": ConfirmForm(
                throttle=restriction is not None,
                initial={"throttle_units": suggested, "apply_throttle": restriction is None},
            ),
            "extend_form": ExtendForm() if restriction and restriction.ends_at else None,
            "lift_form": LiftForm(),
        }
        if alert.status != AnomalyAlert.Status.OPEN and restriction is not None:
            forms_shown["confirm_form"] = None  # confirmed, its throttle holds: nothing to add
        if not may_act:
            forms_shown = dict.fromkeys(forms_shown)
        forms_shown.update(bound)
        window = [alert.evidence.get(end) for end in ("window_start", "window_end")]
        return TemplateResponse(
            request,
            "admin/console/anomaly_alert.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Anomaly alert: {alert.tenant} · {alert.channel.name}",
                "opts": self.model._meta,
                "alert": alert,
                "active": alert.status in AnomalyAlert.ACTIVE,
                "throttle": restriction,
                "throttle_words": _throttle_words(restriction) if restriction else None,
                "chart": evidence_svg(
                    alert.evidence.get("series", []),
                    judged=(
                        (datetime.fromisoformat(window[0]), datetime.fromisoformat(window[1]))
                        if all(window)
                        else None
                    ),
                    cap=restriction.limit_units if restriction else None,
                ),
                "ratio": self.rate_vs_normal(alert),
                "capacity": self.capacity(alert),
                "age": self.age(alert),
                "reasons": [
                    {
                        "ratio": f"its hourly rate is {self.rate_vs_normal(alert)}",
                        "capacity": f"it used {self.capacity(alert)} of the channel's capacity",
                    }[r]
                    for r in alert.reasons
                ],
                **forms_shown,
            },
            status=status,
        )

    def _act(self, request: HttpRequest, alert_id: int) -> AnomalyAlert | None:
        """The alert to act on, or None when this is no POST (the page is shown)."""
        if not request.user.has_perm(ACT_PERMISSION):
            raise PermissionDenied
        alert = self._alert(alert_id)
        return alert if request.method == "POST" else None

    def _done(self, request: HttpRequest, alert: AnomalyAlert, message: str) -> HttpResponse:
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:policies_anomalyalert_change", args=[alert.pk]))

    def confirm_view(self, request: HttpRequest, alert_id: int) -> HttpResponse:
        alert = self._act(request, alert_id)
        if alert is None:
            return self._page(request, self._alert(alert_id))
        had = throttle_in_force(alert, now=timezone.now())
        form = ConfirmForm(request.POST, throttle=had is not None)
        if form.is_valid():
            data = form.cleaned_data
            apply = had is None and data.get("apply_throttle")
            try:
                done = anomaly_alert_confirm(
                    alert=alert, reason=data["reason"], actor=staff_user(request),
                    throttle_units=data["throttle_units"] if apply else None,
                    duration=timedelta(hours=data["hours"]) if apply else None,
                )  # fmt: skip
            except ServiceError as exc:
                form.add_error(None, exc.detail)
            else:
                who = f"{done.tenant}'s {done.channel.name}"
                if had is not None:
                    text = (
                        f"Alert confirmed: {who} stays throttled to {_throttle_words(had)}; "
                        "the customer was told when the throttle began."
                    )
                elif apply and done.restriction is not None:
                    text = (
                        f"Alert confirmed and {who} throttled to "
                        f"{_throttle_words(done.restriction)}; the customer has been sent why."
                    )
                else:
                    text = f"Alert confirmed without a throttle; {done.tenant} was not told."
                return self._done(request, done, text)
        return self._page(request, alert, status=400, confirm_form=form)

    def extend_view(self, request: HttpRequest, alert_id: int) -> HttpResponse:
        alert = self._act(request, alert_id)
        if alert is None:
            return self._page(request, self._alert(alert_id))
        form = ExtendForm(request.POST)
        if form.is_valid():
            try:
                done = anomaly_alert_extend(
                    alert=alert, duration=timedelta(hours=form.cleaned_data["hours"]),
                    reason=form.cleaned_data["reason"], actor=staff_user(request),
                )  # fmt: skip
            except ServiceError as exc:
                form.add_error(None, exc.detail)
            else:
                assert done.restriction is not None
                return self._done(
                    request,
                    done,
                    f"Throttle of {done.tenant}'s {done.channel.name} extended: now "
                    f"{_throttle_words(done.restriction)}; the customer has been told the new end.",
                )
        return self._page(request, alert, status=400, extend_form=form)

    def lift_view(self, request: HttpRequest, alert_id: int) -> HttpResponse:
        alert = self._act(request, alert_id)
        if alert is None:
            return self._page(request, self._alert(alert_id))
        had = throttle_in_force(alert, now=timezone.now())
        form = LiftForm(request.POST)
        if form.is_valid():
            try:
                done = anomaly_alert_lift(
                    alert=alert, reason=form.cleaned_data["reason"], actor=staff_user(request)
                )
            except ServiceError as exc:
                form.add_error(None, exc.detail)
            else:
                text = (
                    f"Alert lifted and the throttle of {done.tenant}'s {done.channel.name} "
                    "lifted; the customer has been told they can send as usual."
                    if had is not None
                    else f"Alert lifted; no throttle was in force, so {done.tenant} was not told."
                )
                return self._done(request, done, text)
        return self._page(request, alert, status=400, lift_form=form)
