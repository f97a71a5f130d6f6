"""Invitations to join a tenant (the portal's Team page): an owner invites by e-mail, the
invited person accepts once through the link before it expires. Only the token's SHA-256
is stored, as for API keys; the link is shown to the caller once, to be sent.

Kept beside ``tenants/services.py`` rather than in it, to keep each file readable in one
sitting; the functions follow the services' conventions (keyword-only, transactional,
audited in the same transaction)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import Conflict, InvalidInput, NotFound, input_error
from tenants.models import Invitation, Membership, Tenant
from tenants.services import _role_valid, membership_add

TOKEN_BYTES = 32


def invitation_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # for the link; shown once, never stored


def _audited(invitation: Invitation) -> dict[str, str]:
    return {"email": invitation.email, "role": invitation.role}


def invitation_open_get(*, token: str, now: datetime | None = None) -> Invitation:
    """The open invitation of a link's token with its tenant; an unknown, used, revoked or
    expired one is ``NotFound`` (the link says no more than that)."""
    now = now or timezone.now()
    invitation = (
        Invitation.objects.select_related("tenant")
        .filter(token_hash=invitation_token_hash(token))
        .first()
    )
    if invitation is None or not invitation.is_open(now):
        raise NotFound("This invitation is not valid: it was used, withdrawn or has expired.")
    return invitation


@transaction.atomic
def invitation_create(
    *, tenant: Tenant, email: str, role: str, actor: User | None, now: datetime | None = None
) -> IssuedInvitation:
    """Invite ``email`` to ``tenant`` with ``role``, valid ``INVITATION_VALIDITY_DAYS``;
    audited (``invitation.create``). A malformed address or unknown role is refused
    (``InvalidInput``), so is a person already a member (``Conflict``); inviting an address
    again withdraws its open invitation (a new link replaces the old). Invitations of a
    tenant serialize on its row."""
    now = now or timezone.now()
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidInput(
            "Enter a valid e-mail address.",
            errors=[input_error(["email"], "not an e-mail address")],
        ) from None
    _role_valid(role)
    current = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if current.status == Tenant.Status.CLOSED:
        raise Conflict("This account is closed: nobody can be invited to it.")
    if Membership.objects.for_tenant(current).filter(user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member.")
    for earlier in Invitation.objects.for_tenant(current).filter(
        email=email, accepted_at__isnull=True, revoked_at__isnull=True
    ):
        _revoke(earlier, actor=actor, reason="Invited again", now=now)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    invitation = Invitation.objects.create(
        tenant=current, email=email, role=role, token_hash=invitation_token_hash(token),
        created_by=actor, created_at=now,
        expires_at=now + timedelta(days=settings.INVITATION_VALIDITY_DAYS),
    )  # fmt: skip
    audit_record(
        actor=actor, action="invitation.create", tenant=current, obj=invitation, before=None,
        after={**_audited(invitation), "expires_at": invitation.expires_at}, reason="", now=now,
    )  # fmt: skip
    return IssuedInvitation(invitation=invitation, token=token)


@transaction.atomic
def invitation_revoke(
    *, tenant: Tenant, invitation_id: int, actor: User | None, now: datetime | None = None
) -> Invitation:
    """Withdraw an open invitation of ``tenant``; audited. Another tenant's is
    ``NotFound``; one accepted or withdrawn already is ``Conflict``."""
    now = now or timezone.now()
    invitation = (
        Invitation.objects.for_tenant(tenant).select_for_update().filter(pk=invitation_id).first()
    )
    if invitation is None:
        raise NotFound("No such invitation.")
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise Conflict("This invitation was used or withdrawn already.")
    _revoke(invitation, actor=actor, reason="", now=now)
    return invitation


def _revoke(invitation: Invitation, *, actor: User | None, reason: str, now: datetime) -> None:
    invitation.revoked_at = now
    invitation.save(update_fields=["revoked_at"])
    audit_record(
        actor=actor, action="invitation.revoke", tenant=invitation.tenant, obj=invitation,
        before=_audited(invitation), after=None, reason=reason, now=now,
    )  # fmt: skip


@transaction.atomic
def invitation_accept(
    *,
    token: str,
    user: User | None = None,
    username: str = "",
    password: str = "",
    now: datetime | None = None,
) -> Membership:
    """Accept an invitation once: the signed-in ``user`` becomes a member with its role,
    or, without one, a new person is created (``username``, ``password``, the invited
    address) and made a member. Audited (``invitation.accept``, and ``membership.add`` by
    the person). The invitation's row is locked, so of two acceptances of one link one
    succeeds and the other finds it used (``NotFound``). A person already a member, or a
    user name taken, is ``Conflict`` and uses nothing up."""
    now = now or timezone.now()
    found = invitation_open_get(token=token, now=now)
    invitation = Invitation.objects.select_for_update().select_related("tenant").get(pk=found.pk)
    if not invitation.is_open(now):
        raise NotFound("This invitation is not valid: it was used, withdrawn or has expired.")
    if user is None:
        username = username.strip()
        if not username or not password:
            raise InvalidInput("A new account needs a user name and a password.")
        if User.objects.filter(username__iexact=username).exists():
            raise Conflict("This user name is taken; choose another or sign in.")
        user = User.objects.create_user(
            username=username, email=invitation.email, password=password
        )
    membership = membership_add(
        tenant=invitation.tenant, user=user, role=invitation.role, actor=user, now=now
    )
    invitation.accepted_at, invitation.accepted_by = now, user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(
        actor=user, action="invitation.accept", tenant=invitation.tenant, obj=invitation,
        before=None, after={**_audited(invitation), "user": user.get_username()}, reason="",
        now=now,
    )  # fmt: skip
    return membership
