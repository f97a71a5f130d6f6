"""The portal's forms."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.utils.translation import gettext_lazy as _

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
