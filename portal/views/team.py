"""Team (``/team/``): the members and their roles; owners invite by e-mail, change roles
and remove members, through the tenants services (audited). The invitation link
(``/invitations/<token>/``) is accepted by a signed-in person, or by a new one who sets a
password."""

from __future__ import annotations

import logging

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, password_validation
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from creditguard.errors import Conflict, InvalidInput, NotFound, ServiceError
from creditguard.locale_format import day_text
from portal.access import MANAGE_MEMBERS, SESSION_TENANT, activate_language, member_required
from portal.layout import render_page
from tenants.invitations import (
    IssuedInvitation,
    invitation_accept,
    invitation_create,
    invitation_open_get,
    invitation_revoke,
)
from tenants.models import Invitation, Membership
from tenants.services import membership_change_role, membership_remove

log = logging.getLogger(__name__)
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
ROLE_NAMES: dict[str, object] = {
    Membership.Role.OWNER: gettext_lazy("Owner"),
    Membership.Role.ADMIN: gettext_lazy("Admin"),
    Membership.Role.VIEWER: gettext_lazy("Viewer"),
}


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Membership.Role.choices)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class NewPersonForm(forms.Form):
    username = forms.CharField(max_length=150)
    password = forms.CharField(widget=forms.PasswordInput, strip=False)
    password_again = forms.CharField(widget=forms.PasswordInput, strip=False)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        password = data.get("password")
        if password and password != data.get("password_again"):
            raise ValidationError(_("The two passwords differ."))
        if password:
            password_validation.validate_password(str(password))
        return data


@member_required()
def team(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    members = list(
        Membership.objects.for_tenant(tenant).select_related("user").order_by("user__username")
    )
    order: dict[str, int] = {
        Membership.Role.OWNER: 0,
        Membership.Role.ADMIN: 1,
        Membership.Role.VIEWER: 2,
    }
    members.sort(key=lambda m: order.get(m.role, 3))
    # The only owner is neither removed nor demoted (tenants.services._keep_an_owner): the
    # page offers no action the service would refuse, and says why.
    owners = sum(1 for m in members if m.role == Membership.Role.OWNER)
    invitations = list(
        Invitation.objects.for_tenant(tenant).filter(
            accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )
    )
    return render_page(
        request,
        "portal/team.html",
        {
            "members": [
                {
                    "m": m,
                    "role": ROLE_NAMES.get(m.role, m.role),
                    "only_owner": m.role == Membership.Role.OWNER and owners == 1,
                }
                for m in members
            ],
            "invitations": [{"i": i, "role": ROLE_NAMES.get(i.role, i.role)} for i in invitations],
            "roles": [(value, ROLE_NAMES[value]) for value in Membership.Role.values],
            "validity_days": settings.INVITATION_VALIDITY_DAYS,
        },
    )


@require_POST
@member_required(MANAGE_MEMBERS)
def invite(request: HttpRequest) -> HttpResponse:
    """Invite by e-mail through ``invitation_create``; the link is sent to the address and
    shown to the owner once, to pass on if the e-mail does not arrive."""
    tenant = request.tenant  # type: ignore[attr-defined]
    form = InviteForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Enter a valid e-mail address and a role."))
        return redirect("portal:team")
    try:
        issued = invitation_create(
            tenant=tenant, email=form.cleaned_data["email"], role=form.cleaned_data["role"],
            actor=request.user,  # type: ignore[arg-type]
        )  # fmt: skip
    except Conflict:
        messages.error(request, _("This person is already a member, or the account is closed."))
        return redirect("portal:team")
    except InvalidInput:
        messages.error(request, _("Enter a valid e-mail address and a role."))
        return redirect("portal:team")
    link = settings.PUBLIC_BASE_URL.rstrip("/") + reverse("portal:invitation", args=[issued.token])
    _send_invitation(issued, link=link, inviter=request.user.get_username())
    messages.success(
        request,
        _("Invitation sent to %(email)s. The link, valid until %(until)s: %(link)s")
        % {
            "email": issued.invitation.email,
            "until": day_text(
                issued.invitation.expires_at.astimezone(tenant.tzinfo).date(),
                language=(get_language() or "en")[:2],
            ),
            "link": link,
        },
    )
    return redirect("portal:team")


def _send_invitation(issued: IssuedInvitation, *, link: str, inviter: str) -> None:
    """The invitation e-mail, in the tenant's language. A failed send is logged: the owner
    has the link on the page to pass on."""
    invitation = issued.invitation
    with translation.override(invitation.tenant.language):
        subject = _("You are invited to %(tenant)s on CreditGuard") % {
            "tenant": invitation.tenant.name
        }
        body = _(
            "%(inviter)s invites you to the CreditGuard account of %(tenant)s as %(role)s.\n\n"
            "Accept the invitation here (the link works once, until %(until)s):\n%(link)s\n"
        ) % {
            "inviter": inviter,
            "tenant": invitation.tenant.name,
            "role": str(ROLE_NAMES.get(invitation.role, invitation.role)),
            "until": day_text(
                invitation.expires_at.astimezone(invitation.tenant.tzinfo).date(),
                language=invitation.tenant.language,
            ),
            "link": link,
        }
    try:
        send_mail(subject, body, None, [invitation.email])
    except Exception:  # any transport failure: the owner has the link
        log.exception("invitation e-mail to %s not sent", invitation.email)


@require_POST
@member_required(MANAGE_MEMBERS)
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _membership(request, membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose one of the roles."))
        return redirect("portal:team")
    try:
        membership_change_role(
            membership=membership, role=form.cleaned_data["role"],
            actor=request.user,  # type: ignore[arg-type]
        )  # fmt: skip
    except Conflict:
        messages.error(request, _("The last owner cannot be removed or made admin or viewer."))
    else:
        messages.success(request, _("Role changed."))
    return redirect("portal:team")


@require_POST
@member_required(MANAGE_MEMBERS)
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _membership(request, membership_id)
    try:
        membership_remove(membership=membership, actor=request.user)  # type: ignore[arg-type]
    except Conflict:
        messages.error(request, _("The last owner cannot be removed or made admin or viewer."))
        return redirect("portal:team")
    if membership.user_id == request.user.pk:
        request.session.pop(SESSION_TENANT, None)
        return redirect("portal:overview")
    messages.success(request, _("Member removed."))
    return redirect("portal:team")


@require_POST
@member_required(MANAGE_MEMBERS)
def invitation_withdraw(request: HttpRequest, invitation_id: int) -> HttpResponse:
    try:
        invitation_revoke(
            tenant=request.tenant,  # type: ignore[attr-defined]
            invitation_id=invitation_id,
            actor=request.user,  # type: ignore[arg-type]
        )
    except NotFound as exc:
        raise Http404("No such invitation.") from exc
    except ServiceError:
        messages.error(request, _("This invitation was used or withdrawn already."))
    else:
        messages.success(request, _("Invitation withdrawn."))
    return redirect("portal:team")


def _membership(request: HttpRequest, membership_id: int) -> Membership:
    """A member of the current tenant; another tenant's is not found (404)."""
    membership = (
        Membership.objects.for_tenant(request.tenant)  # type: ignore[attr-defined]
        .select_related("user", "tenant")
        .filter(pk=membership_id)
        .first()
    )
    if membership is None:
        raise Http404("No such member.")
    return membership


def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """Accept an invitation: a signed-in person joins with one click; a new person chooses
    a user name and a password. An unknown, used, withdrawn or expired link answers 404."""
    try:
        found = invitation_open_get(token=token)
    except NotFound:
        activate_language(request, None)
        return render_page(request, "portal/invitation.html", {"invalid": True}, status=404)
    activate_language(request, found.tenant)
    signed_in = request.user.is_authenticated
    form = NewPersonForm(request.POST or None) if not signed_in else None
    error = ""
    if request.method == "POST" and (signed_in or (form is not None and form.is_valid())):
        try:
            if signed_in:
                membership = invitation_accept(token=token, user=request.user)  # type: ignore[arg-type]
            else:
                assert form is not None
                membership = invitation_accept(
                    token=token, username=form.cleaned_data["username"],
                    password=form.cleaned_data["password"],
                )  # fmt: skip
                login(request, membership.user, backend=MODEL_BACKEND)
        except NotFound:
            return render_page(request, "portal/invitation.html", {"invalid": True}, status=404)
        except Conflict:
            error = (
                _("You are already a member of this account.")
                if signed_in
                else _("This user name is taken; choose another, or log in first.")
            )
        except ServiceError:
            error = _("Enter a user name and a password.")
        else:
            request.session[SESSION_TENANT] = membership.tenant_id
            messages.success(
                request, _("Welcome to %(tenant)s.") % {"tenant": membership.tenant.name}
            )
            return redirect("portal:overview")
    return render_page(
        request,
        "portal/invitation.html",
        {
            "invitation": found,
            "role": ROLE_NAMES.get(found.role, found.role),
            "form": form,
            "error": error,
            "login_url": reverse("portal:login") + "?next=" + request.path,
        },
        status=400 if request.method == "POST" else 200,
    )
