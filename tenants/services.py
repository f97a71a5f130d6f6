"""State changes for tenants, their members and their API keys."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import Conflict, InvalidInput, full_clean_or_refuse, input_error
from tenants.models import ApiKey, Membership, Scope, Tenant

KEY_PREFIX_BYTES = 6  # 12 hex characters, public, used to find the key
KEY_SECRET_BYTES = 24
API_KEY_NAME_MAX = ApiKey._meta.get_field("name").max_length or 100


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def split_api_key(raw_key: str) -> str | None:
    """The public prefix of a key of the form ``cg_<prefix>_<secret>``, or None."""
    parts = raw_key.split("_")
    if len(parts) != 3 or parts[0] != "cg" or not parts[1] or not parts[2]:
        return None
    return parts[1]


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw_key: str  # shown once, never stored


# What staff may change on a tenant (``tenant_update``). The status follows restrictions.
TENANT_EDITABLE = (
    "name",
    "slug",
    "industry",
    "size_band",
    "language",
    "currency",
    "time_zone",
    "contact_name",
    "contact_email",
)
# Fixed once the tenant has a billing period: periods are calendar months in its time zone
# (found by their start, unique by their label) and its charges are in its currency, so a
# change would leave them behind. Read-only rather than migrated: simple and safe.
TENANT_FIXED_ONCE_BILLED = ("time_zone", "currency")

# Sent inside the transaction of ``tenant_create`` (``tenant``): the limit rules live in
# policies, a layer above tenants, which gives the new tenant version 1 of its rules from
# its cohort's defaults (policies/receivers.py), committed with the tenant or not at all.
tenant_created = Signal()
# Sent inside the transaction of ``tenant_reopen`` (``tenant``), once its status is active
# again: the restrictions live in policies, which brings the status in line with those
# not yet ended (policies/receivers.py).
tenant_reopened = Signal()


@transaction.atomic
def tenant_create(
    *,
    slug: str,
    name: str,
    industry: str = Tenant.Industry.OTHER,
    size_band: str = Tenant.SizeBand.SMALL,
    language: str = Tenant.Language.GERMAN,
    currency: str = "EUR",
    time_zone: str = "Europe/Berlin",
    contact_name: str = "",
    contact_email: str = "",
    actor: User | None = None,
    now: datetime | None = None,
) -> Tenant:
    """Create a tenant after validating every field (raises ``ValidationError``),
    with version 1 of its limit rules from its cohort's defaults; audited."""
    now = now or timezone.now()
    tenant = Tenant(
        slug=slug,
        name=name,
        industry=industry,
        size_band=size_band,
        language=language,
        currency=currency.upper(),
        time_zone=time_zone,
        contact_name=contact_name,
        contact_email=contact_email,
    )
    tenant.full_clean()
    tenant.save()
    tenant_created.send(sender=Tenant, tenant=tenant)
    audit_record(
        actor=actor, action="tenant.create", tenant=tenant, obj=tenant, before=None,
        after={field: getattr(tenant, field) for field in TENANT_EDITABLE}, reason="", now=now,
    )  # fmt: skip
    return tenant


@transaction.atomic
def tenant_update(
    *,
    tenant: Tenant,
    changes: Mapping[str, Any],
    actor: User | None,
    reason: str = "",
    now: datetime | None = None,
) -> Tenant:
    """Change a tenant's editable fields (``TENANT_EDITABLE``), validated like a new one,
    and audit what changed (before and after) in the same transaction; returns the tenant
    as saved. Values equal to the current ones are no change, and no change writes no
    audit row. The time zone and the currency are refused once the tenant has a billing
    period. Concurrent changes of one tenant serialize on its row."""
    now = now or timezone.now()
    unknown = sorted(set(changes) - set(TENANT_EDITABLE))
    if unknown:
        raise InvalidInput(
            f"Not editable here: {', '.join(unknown)}.",
            errors=[input_error([f], "not editable") for f in unknown],
        )
    current = Tenant.objects.select_for_update().get(pk=tenant.pk)
    wanted = {**changes}
    if isinstance(wanted.get("currency"), str):
        wanted["currency"] = wanted["currency"].upper()
    changed = {f: value for f, value in wanted.items() if getattr(current, f) != value}
    fixed = [f for f in TENANT_FIXED_ONCE_BILLED if f in changed]
    if fixed and current.periods.exists():
        raise InvalidInput(
            "The time zone and the currency are fixed once the tenant has a billing period.",
            errors=[input_error([f], "fixed once billed") for f in fixed],
        )
    if not changed:
        return current
    before = {f: getattr(current, f) for f in changed}
    for f, value in changed.items():
        setattr(current, f, value)
    full_clean_or_refuse(current, detail="The tenant is not valid.")
    current.save(update_fields=list(changed))
    audit_record(
        actor=actor, action="tenant.update", tenant=current, obj=current, before=before,
        after=changed, reason=reason, now=now,
    )  # fmt: skip
    return current


def _reason_required(reason: str, *, what: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InvalidInput(
            f"{what} needs a reason.",
            errors=[input_error(["reason"], "required")],
        )
    return reason


@transaction.atomic
def tenant_close(
    *, tenant: Tenant, reason: str, actor: User | None, now: datetime | None = None
) -> Tenant:
    """Close a tenant for good: revoke each of its API keys through ``api_key_revoke``
    (one audit row each), set its status to closed and audit the close, all in one
    transaction; returns the tenant as saved. A reason is required (``InvalidInput``); a
    closed tenant is refused (``Conflict``). Closed, it can no longer authenticate, its
    authorizations are denied, no new key is issued to it and restrictions leave its
    status alone. Its history (periods, ledger, charges) stays. Concurrent closes of one
    tenant serialize on its row: one closes, the other is refused."""
    now = now or timezone.now()
    reason = _reason_required(reason, what="Closing a tenant")
    current = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if current.status == Tenant.Status.CLOSED:
        raise Conflict(f"{current} is already closed.")
    revoked = [
        api_key.prefix
        for api_key in ApiKey.objects.for_tenant(current).filter(revoked_at__isnull=True)
        if api_key_revoke(api_key=api_key, actor=actor, reason=f"Tenant closed: {reason}", now=now)
    ]
    before = current.status
    current.status = Tenant.Status.CLOSED
    current.save(update_fields=["status"])
    audit_record(
        actor=actor, action="tenant.close", tenant=current, obj=current,
        before={"status": before}, after={"status": current.status, "revoked_keys": revoked},
        reason=reason, now=now,
    )  # fmt: skip
    tenant.status = current.status
    return current


@transaction.atomic
def tenant_reopen(
    *, tenant: Tenant, reason: str, actor: User | None, now: datetime | None = None
) -> Tenant:
    """Reopen a closed tenant: its status becomes active, then follows its restrictions
    not yet ended (``tenant_reopened``, answered by policies in this transaction); audited
    with a required reason. Only a closed tenant is reopened (``Conflict``). Its keys stay
    revoked (revocation is final): staff issue new ones. Concurrent calls serialize on the
    tenant's row: one reopens, the other is refused."""
    now = now or timezone.now()
    reason = _reason_required(reason, what="Reopening a tenant")
    current = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if current.status != Tenant.Status.CLOSED:
        raise Conflict(f"{current} is not closed.")
    current.status = Tenant.Status.ACTIVE
    current.save(update_fields=["status"])
    tenant_reopened.send(sender=Tenant, tenant=current)
    current.refresh_from_db(fields=["status"])
    audit_record(
        actor=actor, action="tenant.reopen", tenant=current, obj=current,
        before={"status": Tenant.Status.CLOSED}, after={"status": current.status},
        reason=reason, now=now,
    )  # fmt: skip
    tenant.status = current.status
    return current


def _member(membership: Membership) -> dict[str, str]:
    return {"user": membership.user.get_username(), "role": membership.role}


def _role_valid(role: str) -> None:
    if role not in Membership.Role.values:
        raise InvalidInput(
            f"Unknown role {role!r}; choose from {', '.join(Membership.Role.values)}.",
            errors=[input_error(["role"], "unknown role")],
        )


def _keep_an_owner(current: Membership, *, what: str) -> None:
    """Refuse to take away a tenant's last owner (``Conflict``). The caller holds the
    tenant's row lock, so two owners removing or demoting each other at once serialize
    and the second sees the one left."""
    if current.role != Membership.Role.OWNER:
        return
    others = (
        Membership.objects.filter(tenant_id=current.tenant_id)
        .filter(role=Membership.Role.OWNER)
        .exclude(pk=current.pk)
    )
    if not others.exists():
        raise Conflict(f"The last owner cannot be {what}: make another member owner first.")


@transaction.atomic
def membership_add(
    *, tenant: Tenant, user: User, role: str, actor: User | None, now: datetime | None = None
) -> Membership:
    """Make ``user`` a member of ``tenant`` with ``role``; audited (``membership.add``).
    An unknown role is refused (``InvalidInput``), and so is a user who is already a
    member (``Conflict``). Two concurrent adds of one user serialize on the tenant's row:
    one adds, the other is refused."""
    now = now or timezone.now()
    _role_valid(role)
    current = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if Membership.objects.for_tenant(current).filter(user=user).exists():
        raise Conflict(f"{user.get_username()} is already a member of {current}.")
    membership = Membership.objects.create(tenant=current, user=user, role=role)
    audit_record(
        actor=actor, action="membership.add", tenant=current, obj=membership, before=None,
        after=_member(membership), reason="", now=now,
    )  # fmt: skip
    return membership


@transaction.atomic
def membership_change_role(
    *, membership: Membership, role: str, actor: User | None, now: datetime | None = None
) -> Membership:
    """Give a member another role; audited (``membership.change_role``, before and
    after). An unknown role is refused (``InvalidInput``); the same role is no change and
    writes no audit row; the last owner is not demoted (``Conflict``). Concurrent changes
    serialize on the tenant's row, then the membership's."""
    now = now or timezone.now()
    _role_valid(role)
    Tenant.objects.select_for_update().filter(pk=membership.tenant_id).first()
    current = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
    if current.role == role:
        return current
    _keep_an_owner(current, what="demoted")
    before = _member(current)
    current.role = role
    current.save(update_fields=["role"])
    audit_record(
        actor=actor, action="membership.change_role", tenant=current.tenant, obj=current,
        before=before, after=_member(current), reason="", now=now,
    )  # fmt: skip
    membership.role = role
    return current


@transaction.atomic
def membership_remove(
    *, membership: Membership, actor: User | None, reason: str = "", now: datetime | None = None
) -> None:
    """Remove a member from its tenant; audited (``membership.remove``, who and with
    which role). A membership removed already is refused (``Conflict``): of two
    concurrent removals, one removes and the other is refused; so is the last owner, and
    removals and role changes of one tenant serialize on its row."""
    now = now or timezone.now()
    Tenant.objects.select_for_update().filter(pk=membership.tenant_id).first()
    current = (
        Membership.objects.select_for_update()
        .select_related("user", "tenant")
        .filter(pk=membership.pk)
        .first()
    )
    if current is None:
        raise Conflict("This member was removed already.")
    _keep_an_owner(current, what="removed")
    audit_record(
        actor=actor, action="membership.remove", tenant=current.tenant, obj=current,
        before=_member(current), after=None, reason=reason, now=now,
    )  # fmt: skip
    current.delete()


@transaction.atomic
def api_key_create(
    *,
    tenant: Tenant | None,
    name: str,
    scopes: list[str],
    created_by: User | None = None,
    now: datetime | None = None,
) -> IssuedKey:
    """Issue a key with the given scopes, audited (``api_key.create``: name, prefix and
    scopes, never the secret) in the same transaction; the raw key is returned once and
    not kept. A name (at most 100 characters, kept without surrounding blanks) and at
    least one known scope are required (``InvalidInput``). A closed tenant is issued none
    (``Conflict``): the tenant's row is locked and read afresh, so a key cannot slip past
    a concurrent ``tenant_close``, which revokes the keys under the same lock."""
    now = now or timezone.now()
    name = name.strip()
    if not name or len(name) > API_KEY_NAME_MAX:
        raise InvalidInput(
            f"A key needs a name of 1 to {API_KEY_NAME_MAX} characters.",
            errors=[input_error(["name"], "required, at most 100")],
        )
    valid = set(Scope.values)
    unknown = [scope for scope in scopes if scope not in valid]
    if unknown or not scopes:
        raise InvalidInput(
            f"Unknown scopes {unknown}; choose from {sorted(valid)}"
            if unknown
            else "A key needs at least one scope.",
            errors=[input_error(["scopes"], "unknown or none")],
        )
    if tenant is not None:
        status = Tenant.objects.select_for_update().values_list("status", flat=True)
        if status.get(pk=tenant.pk) == Tenant.Status.CLOSED:
            raise Conflict(f"{tenant.slug} is closed: a closed tenant is issued no key.")
    prefix = secrets.token_hex(KEY_PREFIX_BYTES)
    raw_key = f"cg_{prefix}_{secrets.token_urlsafe(KEY_SECRET_BYTES).replace('_', '-')}"
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        prefix=prefix,
        secret_hash=hash_api_key(raw_key),
        scopes=sorted(set(scopes)),
        created_by=created_by,
    )
    audit_record(
        actor=created_by, action="api_key.create", tenant=tenant, obj=api_key, before=None,
        after={"name": name, "prefix": prefix, "scopes": api_key.scopes}, reason="", now=now,
    )  # fmt: skip
    return IssuedKey(api_key=api_key, raw_key=raw_key)


@transaction.atomic
def api_key_revoke(
    *,
    api_key: ApiKey,
    actor: User | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> bool:
    """Revoke a key and write its audit row in the same transaction; whether it was
    revoked by this call. Revoking twice keeps the first time and writes one audit row:
    the revocation is a conditional update, so of two concurrent calls exactly one wins."""
    now = now or timezone.now()
    revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    if not revoked:
        return False
    api_key.revoked_at = now
    audit_record(
        actor=actor,
        action="api_key.revoke",
        tenant=api_key.tenant,
        obj=api_key,
        before={"revoked_at": None},
        after={"revoked_at": now, "prefix": api_key.prefix, "name": api_key.name},
        reason=reason,
        now=now,
    )
    return True
