"""Staff forms of the admin console; each submits to one service."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.widgets import AdminRadioSelect

from console.outcomes import Notice, staff_instant, told_sentence
from metering.models import Channel
from policies.models import Action, CarryOver, TopUpPack, Window
from policies.services.rules import LimitChange
from policies.terms import TERM_NAMES, worse_terms
from tenants.models import Tenant
from tenants.services import TENANT_EDITABLE, TENANT_FIXED_ONCE_BILLED


def _thresholds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise forms.ValidationError("Percentages separated by commas, e.g. 50,80,90,100.") from None


def internal_reason_field(
    help_text: str = "For the audit trail and staff; never sent to the tenant.",
) -> forms.CharField:
    """The internal reason every staff action asks for: audited, never sent to the tenant."""
    return forms.CharField(
        label="Internal reason", widget=forms.Textarea(attrs={"rows": 3}), help_text=help_text
    )


def customer_reason_field(
    help_text: str, *, required: bool = False, rows: int = 3
) -> forms.CharField:
    """The reason sent to the tenant as written, beside the internal one."""
    return forms.CharField(
        label="Reason sent to the tenant",
        required=required,
        widget=forms.Textarea(attrs={"rows": rows}),
        help_text=help_text,
    )


class TenantForm(forms.ModelForm):
    """A tenant's page; saved by ``tenant_create`` or ``tenant_update``. The time zone and
    the currency are read-only once the tenant has a billing period (the admin leaves them
    out); a period opened while the page was open is caught here, not by the service."""

    class Meta:
        model = Tenant
        fields = list(TENANT_EDITABLE)

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if self.instance.pk is not None and self.instance.periods.exists():
            for name in TENANT_FIXED_ONCE_BILLED:
                if name in self.changed_data:
                    self.add_error(name, "Fixed once the tenant has a billing period.")
        return data


class ThresholdsField(forms.CharField):
    """Warning thresholds as "70,95": a list of percentages, unchanged when the same list
    is written differently ("70, 95")."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ",".join(str(part) for part in value)
        return value

    def to_python(self, value: Any) -> list[int]:  # type: ignore[override]
        if isinstance(value, list):
            return value
        return _thresholds(super().to_python(value) or "")


# The terms a limit change may set, in the order of the form: the terms of a rule.
LIMIT_TERMS = TERM_NAMES

# Each term as staff read it.
TERM_LABELS = {
    "included_units": "Included credits per period",
    "hard_limit": "Ceiling beyond the credits",
    "action": "Past the limit",
    "restrict_units": "Units allowed when restricted",
    "restrict_window": "Restriction window",
    "warning_thresholds": "Warnings at (%)",
    "carry_over": "Unused credits",
}


def term_text(value: Any) -> str:
    if value is None or value == "":
        return "none"
    if isinstance(value, list | tuple):
        return ", ".join(str(part) for part in value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("_", " ")


class LimitChangeForm(forms.Form):
    """A new version of one channel's rule, pre-filled with the terms in force. Each term
    carries the value shown as a hidden initial: a term left as it was is "unchanged"
    (``terms()`` leaves it out, so ``limit_rule_set`` keeps it), and an empty field is a
    value only where it means one (no ceiling, no window). ``schedule()`` says from when;
    the view reads the date in the tenant's time zone."""

    channel = forms.ModelChoiceField(queryset=Channel.objects.filter(active=True))
    included_units = forms.IntegerField(
        min_value=0, label="Included credits per period", show_hidden_initial=True
    )
    hard_limit = forms.IntegerField(
        min_value=0,
        required=False,
        show_hidden_initial=True,
        help_text="Units beyond the credits still allowed; empty: no ceiling.",
    )
    action = forms.ChoiceField(
        choices=Action.choices, label="Past the limit", show_hidden_initial=True
    )
    restrict_units = forms.IntegerField(
        min_value=0, required=False, show_hidden_initial=True, help_text="For 'restrict'."
    )
    restrict_window = forms.ChoiceField(
        choices=[("", "—"), *Window.choices], required=False, show_hidden_initial=True
    )
    warning_thresholds = ThresholdsField(
        show_hidden_initial=True, help_text="Percent, comma-separated."
    )
    carry_over = forms.ChoiceField(
        choices=CarryOver.choices,
        label="Unused credits",
        required=False,  # not posted: unchanged
        show_hidden_initial=True,
    )
    effective_from = forms.DateTimeField(
        required=False,
        label="Effective from",
        help_text="In the tenant's time zone. Empty: better terms now, worse terms after the "
        "notice period. Worse terms cannot start before the notice ends; included credits "
        "change at the start of a period.",
    )
    immediate_as_enforcement = forms.BooleanField(
        required=False,
        label="Worse terms at once, as an enforcement measure",
        help_text="Only to restrict or suspend under the policy; needs the reason sent to the "
        "tenant.",
    )
    customer_reason = customer_reason_field(
        "For an enforcement measure: sent to the tenant as written.",
        rows=2,
    )
    reason = internal_reason_field("Kept in the audit trail; never sent to the tenant.")

    fieldsets = [
        (None, {"fields": ["channel"]}),
        (
            "Terms",
            {
                "fields": [
                    "included_units",
                    "hard_limit",
                    "action",
                    ("restrict_units", "restrict_window"),
                    "warning_thresholds",
                    "carry_over",
                ],
                "description": "A term left as it is keeps its value.",
            },
        ),
        ("When", {"fields": ["effective_from", "immediate_as_enforcement", "customer_reason"]}),
        (None, {"fields": ["reason"]}),
    ]

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A limit change needs a reason.")
        return reason

    def consequences(self, results: list[LimitChange], notices: list[Notice]) -> list[str]:
        """Worse terms are told to the tenant and confirmed first; better ones are not."""
        lines = []
        for change in results:
            if not change.worsens or change.worse_from is None:
                continue
            tenant = change.rule.tenant
            when = (
                "at once, as an enforcement measure"
                if self.cleaned_data.get("immediate_as_enforcement")
                else f"from {staff_instant(change.worse_from, tenant)}, after the notice"
            )
            changed = change.before.changed(change.after)
            worse = worse_terms(change.before, change.after)
            lines.append(f"Worse terms for {tenant} on {change.rule.channel.name}, {when}:")
            lines += [
                f"{TERM_LABELS[name]}: {term_text(old)} → {term_text(new)}"
                for name, (old, new) in changed.items()
                if name in worse
            ]
            lines += [
                f"Also changed, needing no notice: {TERM_LABELS[name].lower()} "
                f"{term_text(old)} → {term_text(new)}"
                for name, (old, new) in changed.items()
                if name not in worse
            ]
        return [*lines, f"{told_sentence(notices, future=True)}."] if lines else []

    def schedule(self) -> dict[str, Any]:
        """When the change takes effect, and whether as an enforcement measure."""
        data = self.cleaned_data
        return {
            "effective_from": data.get("effective_from"),
            "immediate_as_enforcement": bool(data.get("immediate_as_enforcement")),
            "customer_reason": (data.get("customer_reason") or "").strip(),
        }

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if not self.errors and not self.terms():
            raise forms.ValidationError("Nothing changed: change at least one term.")
        return data

    def terms(self) -> dict[str, Any]:
        """The terms changed on the form; the others are left to the rule in force."""
        data = self.cleaned_data
        changed = {name: data[name] for name in LIMIT_TERMS if name in self.changed_data}
        if "restrict_window" in changed:
            changed["restrict_window"] = changed["restrict_window"] or ""
        return changed


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


class DecisionForm(ReasonForm):
    decision = forms.ChoiceField(
        choices=[("bill", "Bill"), ("waive", "Waive"), ("partly_waive", "Waive partly")]
    )
    waived_amount = forms.DecimalField(
        required=False,
        min_value=0,
        decimal_places=2,
        help_text="For a partial waiver: the amount waived.",
    )
    reason = internal_reason_field()
    customer_reason = customer_reason_field(
        "Sent to the tenant as written, with the decision and its amounts (e-mail, "
        "in-app notification, webhooks); empty: the decision is told without a reason.",
    )


class RestrictForm(ReasonForm):
    """Two reasons: the internal one for the audit trail, the other sent to the tenant.

    It starts at the least harmful restriction — a throttle of one channel, which must be
    chosen, for 24 hours — and every restriction is confirmed before it is applied (the
    tenant is always told): the page names a suspension, all channels and no end."""

    ALL = "all"
    fieldsets = [
        (None, {"fields": ["channel", "kind"]}),
        ("Throttle", {"fields": ["limit_units", "window"]}),
        ("How long", {"fields": ["hours"]}),
        ("Reasons", {"fields": ["reason", "customer_reason"]}),
    ]

    channel = forms.ChoiceField(
        help_text="One channel; “All channels” restricts the whole tenant.",
    )
    kind = forms.ChoiceField(
        choices=[
            ("throttle", "Throttle: a number of units per hour or day"),
            ("suspend", "Suspend: nothing may be sent"),
        ],
        initial="throttle",
        widget=AdminRadioSelect(attrs={"class": "radiolist"}),
    )
    limit_units = forms.IntegerField(
        min_value=0, required=False, label="Units allowed",
        help_text="For a throttle: how many units may be sent per window.",
    )  # fmt: skip
    window = forms.ChoiceField(
        choices=Window.choices, initial=Window.HOUR, required=False, label="Per"
    )
    hours = forms.IntegerField(
        min_value=1, required=False, initial=24, label="Duration in hours",
        help_text="Empty: permanent, until someone lifts it.",
    )  # fmt: skip
    reason = internal_reason_field()
    customer_reason = customer_reason_field(
        "Sent to the tenant as written, with the restriction (e-mail, in-app "
        "notification, webhooks).",
        required=True,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        channels = Channel.objects.filter(active=True).order_by("code")
        field = self.fields["channel"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [
            ("", "Choose a channel"),
            *[(str(channel.pk), channel.name) for channel in channels],
            (self.ALL, "All channels (the whole tenant)"),
        ]

    def clean_channel(self) -> Channel | None:
        value = self.cleaned_data["channel"]
        if value == self.ALL:
            return None
        channel = Channel.objects.filter(active=True, pk=value).first()
        if channel is None:
            raise forms.ValidationError("Choose one of the channels.")
        return channel

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if self.cleaned_data.get("kind") == "throttle":
            if self.cleaned_data.get("limit_units") is None and "limit_units" not in self.errors:
                self.add_error("limit_units", "A throttle needs the units allowed per window.")
            if not self.cleaned_data.get("window"):
                self.add_error("window", "A throttle needs a window: hour or day.")
        return data

    def summary(self, tenant: Any) -> str:
        """The restriction in words ("Throttle to 100 units per hour on SMS for …")."""
        data = self.cleaned_data
        if data["kind"] == "suspend":
            what = "Suspension"
        else:
            what = f"Throttle to {data['limit_units']:,} units per {data['window']}"
        scope = f"on {data['channel'].name}" if data["channel"] else "on all channels"
        hours = data["hours"]
        until = f"for {hours} hour{'s' * (hours != 1)}" if hours else "permanently, until lifted"
        return f"{what} {scope} for {tenant} {until}"

    def consequences(self, results: list[Any], notices: list[Notice]) -> list[str]:
        """What the confirmation page names: every restriction is told to the tenant."""
        data = self.cleaned_data
        tenants = {notice.tenant.pk: notice.tenant for notice in notices}.values()
        lines = [f"{self.summary(tenant)}." for tenant in tenants]
        if data["kind"] == "suspend":
            lines.append("Suspend: every authorization on it is denied; nothing may be sent.")
        else:
            units, window = f"{data['limit_units']:,}", data["window"]
            article = "an" if window == "hour" else "a"
            lines.append(
                f"Beyond {units} units in {article} {window}, asking to send is denied until the "
                f"next {window} begins."
            )
        if data["channel"] is None:
            status = "suspended" if data["kind"] == "suspend" else "restricted"
            lines.append(f"All channels: the whole tenant is {status}, every channel at once.")
        if not data["hours"]:
            lines.append("Permanent: it stays until someone lifts it.")
        return [*lines, f"{told_sentence(notices, future=True)}."]


class ReduceForm(ReasonForm):
    channel = forms.ModelChoiceField(queryset=Channel.objects.filter(active=True))
    units = forms.IntegerField(min_value=1, help_text="Unused credits of this period to take away.")
    reason = internal_reason_field()
    customer_reason = customer_reason_field(
        "The tenant is told of every reduction (e-mail, in-app notification, "
        "webhooks), with this reason as written; empty: told without a reason.",
    )

    def consequences(self, results: list[Any], notices: list[Notice]) -> list[str]:
        """A reduction takes credits away and is told to the tenant: always confirmed."""
        channel = self.cleaned_data["channel"]
        lines = [
            f"{reduced:,} unused {channel.name} credits of this period are taken away from "
            f"{notice.tenant}: they can no longer be used."
            for reduced, notice in zip(results, notices, strict=False)
        ]
        return [*lines, f"{told_sentence(notices, future=True)}."]


class RecommendationApplyForm(ReasonForm):
    """Applying a suggestion is a limit change: confirmed when it worsens terms, which
    tells the tenant."""

    def consequences(self, results: list[Any], notices: list[Notice]) -> list[str]:
        worse = [notice for notice in notices if notice.kind == "limit_changed"]
        return [
            f"Worse terms for {notice.tenant} (fewer credits or a lower ceiling): they take "
            f"effect after the notice period; {notice.told(future=True)}."
            for notice in worse
        ]


class OfferForm(forms.Form):
    pack = forms.ModelChoiceField(
        queryset=TopUpPack.objects.filter(active=True).select_related("channel"),
        help_text="The pack offered to each selected tenant.",
    )

    def summary(self, tenant: Any) -> str:
        return f"Offer of {self.cleaned_data['pack']} sent to {tenant}"
