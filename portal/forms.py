"""The portal's forms."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from notifications.services.alert_recipients import MAX_EMAIL_LENGTH
from policies.models.alerts import ALERT_PERCENT_MAX, ALERT_PERCENT_MIN
from portal.alerts import Alerts
from tenants.models import Membership


class PortalLoginForm(AuthenticationForm):
    """Django's login form, for members of a tenant only: an account that belongs to no
    tenant (a staff account, say) is refused, however right its password."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _("Please enter a correct username and password."),
        "no_tenant": _(
            "This account does not belong to any customer account. Staff sign in to the "
            "staff console."
        ),
    }

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not Membership.objects.filter(user=user).exists():
            raise forms.ValidationError(self.error_messages["no_tenant"], code="no_tenant")


class PortalPasswordResetForm(PasswordResetForm):
    """Sends the reset link only to members of a tenant (staff reset theirs elsewhere)."""

    def get_users(self, email: str) -> Any:
        return (
            user
            for user in super().get_users(email)
            if Membership.objects.filter(user=user).exists()
        )


class AlertThresholdForm(forms.Form):
    """An extra warning threshold on a channel (``alert_threshold_add``)."""

    channel = forms.ChoiceField(label=_("Channel"))
    percent = forms.IntegerField(
        label=_("Warn at (percent of the credits)"),
        min_value=ALERT_PERCENT_MIN,
        max_value=ALERT_PERCENT_MAX,
    )

    prefix = "threshold"

    def __init__(self, *args: Any, channels: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["channel"].choices = channels  # type: ignore[attr-defined]


class AlertRecipientForm(forms.Form):
    """An address that receives the warnings too (``alert_recipient_add``)."""

    prefix = "recipient"
    email = forms.EmailField(label=_("E-mail address"), max_length=MAX_EMAIL_LENGTH)


def alert_channels(alerts: Alerts) -> list[tuple[str, str]]:
    """The threshold form's channels: the active ones, named in the person's language."""
    language = (get_language() or "en")[:2]
    return [
        (row.channel.code, row.channel.labels().get(language, {}).get("name") or row.channel.name)
        for row in alerts.channels
    ]
