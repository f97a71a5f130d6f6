"""Signing in and out, resetting a password, and switching the current tenant."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from portal.access import SESSION_TENANT, activate_language, member_required
from portal.forms import PortalLoginForm, PortalPasswordResetForm
from portal.layout import layout_context
from portal.nav import page_to_return_to


class _PublicPage:
    """A page before login: in the person's or the browser's language, in the layout
    without a tenant."""

    request: HttpRequest

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        activate_language(request, None)
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**layout_context(self.request), **super().get_context_data(**kwargs)}  # type: ignore[misc]


class LoginView(_PublicPage, auth_views.LoginView):
    """Django's session login (django-axes throttles it per account and address)."""

    template_name = "portal/login.html"
    authentication_form = PortalLoginForm
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        return reverse("portal:overview")

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)
        # A new session starts at the tenant where the person's role is highest (the
        # switcher changes it; access.default_membership).
        self.request.session.pop(SESSION_TENANT, None)
        return response


class LogoutView(auth_views.LogoutView):
    """Log out (POST only, as Django requires) and back to the login page."""

    def get_default_redirect_url(self) -> str:
        return reverse("portal:login")


class PasswordResetView(_PublicPage, auth_views.PasswordResetView):
    template_name = "portal/password_reset.html"
    form_class = PortalPasswordResetForm
    email_template_name = "portal/email/password_reset.txt"
    subject_template_name = "portal/email/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password_reset_done")


class PasswordResetDoneView(_PublicPage, auth_views.PasswordResetDoneView):
    template_name = "portal/password_reset_done.html"


class PasswordResetConfirmView(_PublicPage, auth_views.PasswordResetConfirmView):
    template_name = "portal/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password_reset_complete")


class PasswordResetCompleteView(_PublicPage, auth_views.PasswordResetCompleteView):
    template_name = "portal/password_reset_complete.html"


@require_POST
@member_required()
def tenant_switch(request: HttpRequest) -> HttpResponse:
    """Make another of the person's tenants the current one; a tenant the person is not a
    member of answers 404, as any other tenant's object."""
    slug = request.POST.get("tenant", "")
    membership = next(
        (m for m in request.memberships if m.tenant.slug == slug),  # type: ignore[attr-defined]
        None,
    )
    if membership is None:
        raise Http404("No such customer account.")
    request.session[SESSION_TENANT] = membership.tenant_id
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("portal:overview")
    # An action's URL (a form's answer rendered there) takes no GET: its page instead.
    return HttpResponseRedirect(page_to_return_to(target))
