"""Staff forms of the admin console; each submits to one service."""

from __future__ import annotations

from typing import Any

from django import forms

from metering.models import Channel
from policies.models import Action, TopUpPack, Window
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


class LimitChangeForm(forms.Form):
    channel = forms.ModelChoiceField(queryset=Channel.objects.filter(active=True))
    included_units = forms.IntegerField(min_value=0, label="Included credits per period")
    hard_limit = forms.IntegerField(
        min_value=0,
        required=False,
        help_text="Units beyond the credits still allowed; empty: no ceiling.",
    )
    action = forms.ChoiceField(choices=Action.choices, label="Past the limit")
    restrict_units = forms.IntegerField(min_value=0, required=False, help_text="For 'restrict'.")
    restrict_window = forms.ChoiceField(choices=[("", "—"), *Window.choices], required=False)
    warning_thresholds = forms.CharField(
        initial="50,80,90,100", help_text="Percent, comma-separated."
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), help_text="Kept in the audit trail."
    )

    def clean_warning_thresholds(self) -> list[int]:
        return _thresholds(self.cleaned_data["warning_thresholds"])

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A limit change needs a reason.")
        return reason

    def terms(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "included_units": data["included_units"],
            "hard_limit": data["hard_limit"],
            "action": data["action"],
            "restrict_units": data["restrict_units"],
            "restrict_window": data["restrict_window"] or "",
            "warning_thresholds": data["warning_thresholds"],
        }


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


class RestrictForm(ReasonForm):
    channel = forms.ModelChoiceField(
        queryset=Channel.objects.filter(active=True), required=False, empty_label="All channels"
    )
    kind = forms.ChoiceField(choices=[("suspend", "Suspend"), ("throttle", "Throttle")])
    limit_units = forms.IntegerField(min_value=0, required=False, help_text="For a throttle.")
    window = forms.ChoiceField(choices=[("", "—"), *Window.choices], required=False)
    hours = forms.IntegerField(min_value=1, required=False, help_text="Duration; empty: permanent.")


class ReduceForm(ReasonForm):
    channel = forms.ModelChoiceField(queryset=Channel.objects.filter(active=True))
    units = forms.IntegerField(min_value=1, help_text="Unused credits of this period to take away.")


class OfferForm(forms.Form):
    pack = forms.ModelChoiceField(
        queryset=TopUpPack.objects.filter(active=True).select_related("channel"),
        help_text="The pack offered to each selected tenant.",
    )
