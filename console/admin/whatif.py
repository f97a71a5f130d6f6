"""What-if (issue 13): before changing a limit or a fee schedule for one tenant or a cohort
(industry × size band), staff preview its effect on the last ended period and this
period's forecast (``policies.whatif``), then apply it in one step
(``policies.services.whatif``: ``limit_rule_set`` and the fee schedule services, with their
notices) — or, past ``WHATIF_BACKGROUND_THRESHOLD`` tenants, in a worker's task whose
progress page the staff member lands on (``console.admin.whatif_runs``). Hung on the limit
rules' list (read-only: versions are written by services), whose page links to it. Every
role previews (``policies.view_limitrule``); applying is changing limits
(``policies.add_limitrule``), and with a fee schedule also publishing one
(``policies.add_feeschedule``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from console.admin.common import staff_user
from creditguard.errors import InvalidInput, ServiceError
from creditguard.locale_format import money_text
from metering.models import Channel
from policies.models import Action, CarryOver, FeeSchedule, LimitRule, WhatIfRun, Window
from policies.services.fees import fee_tiers_validate
from policies.services.whatif_runs import whatif_start
from policies.whatif import Figures, Proposal, ProposedSchedule, Scope, WhatIf, whatif_preview
from tenants.models import Tenant

PREVIEW_PERMISSION = "policies.view_limitrule"
APPLY_PERMISSION = "policies.add_limitrule"
FEE_PERMISSION = "policies.add_feeschedule"
TERM_WORDS = {"included_units": "included", "hard_limit": "ceiling", "action": "action",
              "restrict_units": "action", "restrict_window": "action",
              "carry_over": "carry-over"}  # fmt: skip
ROWS_SHOWN = 500  # of the table per tenant; the counts above it cover every tenant


def _blank(choices: Any) -> list[tuple[str, str]]:
    return [("", "—"), *choices]


class WhatIfForm(forms.Form):
    channel = forms.ModelChoiceField(Channel.objects.filter(active=True), empty_label=None)
    tenant = forms.SlugField(required=False, label="One tenant (slug)",
                             help_text="Or leave empty and choose a cohort.")  # fmt: skip
    industry = forms.ChoiceField(choices=_blank(Tenant.Industry.choices), required=False,
                                 help_text="Cohort: empty for any industry.")  # fmt: skip
    size_band = forms.ChoiceField(choices=_blank(Tenant.SizeBand.choices), required=False,
                                  help_text="Cohort: empty for any size.")  # fmt: skip
    included_units = forms.IntegerField(required=False, min_value=0, max_value=10**12,
                                        label="Included credits per period")  # fmt: skip
    hard_limit = forms.IntegerField(required=False, min_value=0, max_value=10**12,
                                    label="Hard ceiling beyond the credits")  # fmt: skip
    no_ceiling = forms.BooleanField(required=False, label="Remove the hard ceiling")
    warning_thresholds = forms.CharField(required=False, max_length=100,
                                         help_text="Percentages, e.g. 50, 80, 100.")  # fmt: skip
    action = forms.ChoiceField(choices=_blank(Action.choices), required=False,
                               label="Action past the limit")  # fmt: skip
    restrict_units = forms.IntegerField(required=False, min_value=0, max_value=10**12,
                                        help_text="For 'restrict': units per window.")  # fmt: skip
    restrict_window = forms.ChoiceField(choices=_blank(Window.choices), required=False)
    carry_over = forms.ChoiceField(choices=_blank(CarryOver.choices), required=False,
                                   label="Overage at the period's end")  # fmt: skip
    fee_mode = forms.ChoiceField(choices=_blank(FeeSchedule.Mode.choices), required=False,
                                 label="Fee schedule: mode",
                                 help_text="Empty: keep each tenant's schedule.")  # fmt: skip
    fee_currency = forms.CharField(required=False, max_length=3, initial="EUR",
                                   label="Fee schedule: currency")  # fmt: skip
    fee_tiers = forms.CharField(
        required=False, max_length=500, label="Fee schedule: tiers",
        help_text="'up to:unit price', the last open: 1000:0.08, :0.05",
    )  # fmt: skip

    def clean_tenant(self) -> Tenant | None:
        slug = self.cleaned_data.get("tenant")
        if not slug:
            return None
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise forms.ValidationError("No tenant has this slug.")
        return tenant

    def clean_warning_thresholds(self) -> list[int] | None:
        text = self.cleaned_data.get("warning_thresholds", "").strip()
        if not text:
            return None
        try:
            return [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError("Whole percentages separated by commas.") from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("tenant") and (data.get("industry") or data.get("size_band")):
            raise forms.ValidationError("Choose one tenant or a cohort, not both.")
        if data.get("fee_mode"):
            data["schedule"] = self._schedule(data)
        elif data.get("fee_tiers"):
            self.add_error("fee_mode", "Choose the schedule's mode.")
        changes = {
            name: data[name]
            for name in ("included_units", "hard_limit", "warning_thresholds", "action",
                         "restrict_units")
            if data.get(name) not in (None, "")
        }  # fmt: skip
        for name in ("restrict_window", "carry_over"):
            if data.get(name):
                changes[name] = data[name]
        if data.get("no_ceiling"):
            if "hard_limit" in changes:
                self.add_error("no_ceiling", "Either a ceiling or none.")
            changes["hard_limit"] = None
        data["changes"] = changes
        if not self.errors and not changes and not data.get("schedule"):
            raise forms.ValidationError("Propose at least one term or a fee schedule.")
        return data

    def _schedule(self, data: dict[str, Any]) -> ProposedSchedule | None:
        tiers: list[tuple[int | None, str]] = []
        for part in (data.get("fee_tiers") or "").split(","):
            if not part.strip():
                continue
            up_to, _, price = part.partition(":")
            try:
                tiers.append((int(up_to) if up_to.strip() else None, price.strip()))
            except ValueError:
                self.add_error("fee_tiers", f"{part.strip()!r}: 'up to' is a whole number.")
                return None
        try:
            parsed = fee_tiers_validate(tiers)
        except InvalidInput as exc:
            self.add_error("fee_tiers", exc.detail)
            return None
        currency = (data.get("fee_currency") or "EUR").upper()
        return ProposedSchedule(mode=data["fee_mode"], currency=currency, tiers=tuple(parsed))

    def scope_and_proposal(self) -> tuple[Scope, Proposal]:
        data = self.cleaned_data
        scope = Scope(channel=data["channel"], tenant=data["tenant"],
                      industry=data["industry"], size_band=data["size_band"])  # fmt: skip
        return scope, Proposal(changes=data["changes"], schedule=data.get("schedule"))


class ApplyForm(forms.Form):
    digest = forms.CharField(widget=forms.HiddenInput, max_length=64)
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Internal: each rule version's reason and the audit trail.",
    )
    confirm = forms.BooleanField(
        label="I have read the consequences above: apply to every tenant in the table."
    )


@admin.register(LimitRule)
class LimitRuleAdmin(admin.ModelAdmin):
    """Limit rule versions, read-only (written by ``limit_rule_set``), and the what-if."""

    list_display = ["tenant", "channel", "version", "effective_from", "included_units",
                    "hard_limit", "action", "reason"]  # fmt: skip
    list_filter = ["channel", "action"]
    list_select_related = ["tenant", "channel"]
    search_fields = ["tenant__name", "tenant__slug"]
    change_list_template = "admin/console/whatif_change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a version is history

    def get_urls(self) -> list[Any]:
        return [
            path("whatif/", self.admin_site.admin_view(self.whatif_view),
                 name="policies_limitrule_whatif"),
            path("whatif/apply/", self.admin_site.admin_view(self.apply_view),
                 name="policies_limitrule_whatif_apply"),
            *super().get_urls(),
        ]  # fmt: skip

    def whatif_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(PREVIEW_PERMISSION):
            raise PermissionDenied
        if "channel" not in request.GET:
            return self._page(request, WhatIfForm(), None, None)
        form = WhatIfForm(request.GET)
        return self._preview(request, form)

    def _preview(self, request: HttpRequest, form: WhatIfForm, apply: ApplyForm | None = None,
                 status: int = 200) -> HttpResponse:  # fmt: skip
        if not form.is_valid():
            return self._page(request, form, None, None, status=400)
        scope, proposal = form.scope_and_proposal()
        try:
            preview = whatif_preview(scope=scope, proposal=proposal, now=timezone.now())
        except ServiceError as exc:
            form.add_error(None, exc.detail)
            return self._page(request, form, None, None, status=400)
        if apply is None and self._may_apply(request, proposal):
            apply = ApplyForm(initial={"digest": preview.digest()})
        return self._page(request, form, preview, apply, status=status)

    def _may_apply(self, request: HttpRequest, proposal: Proposal) -> bool:
        user = request.user
        return user.has_perm(APPLY_PERMISSION) and (
            proposal.schedule is None or user.has_perm(FEE_PERMISSION)
        )

    def apply_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(APPLY_PERMISSION):
            raise PermissionDenied
        if request.method != "POST":
            return self._page(request, WhatIfForm(), None, None)
        form, apply = WhatIfForm(request.POST), ApplyForm(request.POST)
        if not (form.is_valid() and apply.is_valid()):
            return self._preview(request, form, apply, status=400)
        scope, proposal = form.scope_and_proposal()
        if not self._may_apply(request, proposal):
            raise PermissionDenied
        try:
            done = whatif_start(
                scope=scope, proposal=proposal, digest=apply.cleaned_data["digest"],
                reason=apply.cleaned_data["reason"], actor=staff_user(request),
            )  # fmt: skip
        except ServiceError as exc:
            apply.add_error(None, exc.detail)
            return self._preview(request, form, apply, status=400)
        if isinstance(done, WhatIfRun):  # too many tenants for one request: a worker's task
            return HttpResponseRedirect(
                reverse("admin:policies_whatifrun_progress", args=[done.pk])
            )
        worse = [row.takes_effect for row in done.preview.worse if row.takes_effect]
        when = f", in force from {min(worse):%Y-%m-%d %H:%M} UTC at the earliest" if worse else ""
        fees = (
            (
                f"; {done.notified_fees} told of the new fee schedule, which prices their "
                f"overage after {settings.FEE_NOTICE_DAYS} days"
            )
            if proposal.schedule
            else ""
        )
        self.message_user(
            request,
            f"What-if applied to {scope.describe()}: {done.changed} tenant"
            f"{'' if done.changed == 1 else 's'} changed; {done.notified_worse} notified of "
            f"worse terms{when}{fees}.",
            messages.SUCCESS,
        )  # fmt: skip
        # To the versions just written (worse terms scheduled after their notice), rather
        # than back to a preview that would offer the same change again.
        return HttpResponseRedirect(reverse("admin:policies_limitrule_changelist"))

    def _page(self, request: HttpRequest, form: WhatIfForm, preview: WhatIf | None,
              apply: ApplyForm | None, status: int = 200) -> TemplateResponse:  # fmt: skip
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "What-if: a limit or fee schedule for a tenant or a cohort",
            "opts": self.model._meta,
            "form": form,
            "apply_form": apply,
            "preview": preview,
            # The proposal as posted, carried into the apply form unchanged.
            "carried": [
                (name, form.data[name])
                for name in WhatIfForm.base_fields
                if form.is_bound and form.data.get(name)
            ],
            "limit_notice_days": settings.LIMIT_NOTICE_DAYS,
            "fee_notice_days": settings.FEE_NOTICE_DAYS,
            "background_threshold": settings.WHATIF_BACKGROUND_THRESHOLD,
        }
        if preview is not None:
            context.update(_display(preview))
        return TemplateResponse(request, "admin/console/whatif.html", context, status=status)


def _money(amounts: dict[str, Decimal]) -> str:
    if not amounts:
        return "none"
    return "; ".join(
        f"{key.rsplit(' (', 1)[0]}: {money_text(value, key[-4:-1], language='en')}"
        for key, value in sorted(amounts.items())
    )


def _side(figures: Figures | None) -> dict[str, Any] | None:
    if figures is None:
        return None
    return {
        "demand": figures.demand, "credits": figures.credits,
        "crossed": ", ".join(f"{t} %" for t in figures.crossed) or "—",
        "denied": figures.denied_units, "overage": figures.overage_units,
        "carried": figures.carried_units,
        "owed": money_text(figures.overage_amount, figures.currency, language="en"),
        "schedule": figures.schedule or "no schedule",
    }  # fmt: skip


def _display(preview: WhatIf) -> dict[str, Any]:
    """The preview as the page shows it: each period's counts, and the first rows."""
    periods = []
    for name, summary in (("Last ended period (actual use)", preview.last),
                          ("This period (forecast to its end)", preview.this)):  # fmt: skip
        periods.append({
            "name": name, "summary": summary,
            "owed_now": _money(summary.overage[0]), "owed_proposed": _money(summary.overage[1]),
        })  # fmt: skip
    rows = [
        {
            "row": row,
            "last": [_side(f) for f in row.last] if row.last else None,
            "this": [_side(f) for f in row.this] if row.this else None,
            "worse": "already announced"
            if row.already_scheduled
            else ", ".join(sorted({TERM_WORDS.get(name, name) for name in row.worse})),
        }
        for row in preview.rows[:ROWS_SHOWN]
    ]
    worse = preview.worse
    return {
        "periods": periods,
        "rows": rows,
        "rows_hidden": max(len(preview.rows) - ROWS_SHOWN, 0),
        "changing": len(preview.changed),
        "worse_count": len(worse),
        "worse_from": min((r.takes_effect for r in worse if r.takes_effect), default=None),
    }
