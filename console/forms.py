"""Staff forms of the admin console; each submits to one service."""

from __future__ import annotations

from typing import Any

from django import forms

from metering.models import Channel
from policies.models import Action, CarryOver, TopUpPack, Window
from policies.terms import TERM_NAMES
from tenants.models import Tenant
from tenants.services import TENANT_EDITABLE, TENANT_FIXED_ONCE_BILLED


def _thresholds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise forms.ValidationError("Percentages separated by commas, e.g. 50,80,90,100.") from None


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
    customer_reason = forms.CharField(
        required=False,
        label="Reason sent to the tenant",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="For an enforcement measure: sent to the tenant as written.",
    )
    reason = forms.CharField(
        label="Internal reason",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Kept in the audit trail; never sent to the tenant.",
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A limit change needs a reason.")
        return reason

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
    reason = forms.CharField(
        label="Internal reason",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For the audit trail and staff; never sent to the tenant.",
    )
    customer_reason = forms.CharField(
        label="Reason sent to the tenant",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Sent to the tenant as written, with the decision and its amounts (e-mail, "
        "in-app notification, webhooks); empty: the decision is told without a reason.",
    )


class RestrictForm(ReasonForm):
    """Two reasons: the internal one for the audit trail, the other sent to the tenant."""

    channel = forms.ModelChoiceField(
        queryset=Channel.objects.filter(active=True), required=False, empty_label="All channels"
    )
    kind = forms.ChoiceField(choices=[("suspend", "Suspend"), ("throttle", "Throttle")])
    limit_units = forms.IntegerField(min_value=0, required=False, help_text="For a throttle.")
    window = forms.ChoiceField(choices=[("", "—"), *Window.choices], required=False)
    hours = forms.IntegerField(min_value=1, required=False, help_text="Duration; empty: permanent.")
    reason = forms.CharField(
        label="Internal reason",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For the audit trail and staff; never sent to the tenant.",
    )
    customer_reason = forms.CharField(
        label="Reason sent to the tenant",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Sent to the tenant as written, with the restriction (e-mail, in-app "
        "notification, webhooks).",
    )


class ReduceForm(ReasonForm):
    channel = forms.ModelChoiceField(queryset=Channel.objects.filter(active=True))
    units = forms.IntegerField(min_value=1, help_text="Unused credits of this period to take away.")
    reason = forms.CharField(
        label="Internal reason",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For the audit trail and staff; never sent to the tenant.",
    )
    customer_reason = forms.CharField(
        label="Reason sent to the tenant",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The tenant is told of every reduction (e-mail, in-app notification, "
        "webhooks), with this reason as written; empty: told without a reason.",
    )


class OfferForm(forms.Form):
    pack = forms.ModelChoiceField(
        queryset=TopUpPack.objects.filter(active=True).select_related("channel"),
        help_text="The pack offered to each selected tenant.",
    )
