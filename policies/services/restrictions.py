"""Restrictions (policy § 5): staff throttle or suspend a channel or the whole tenant,
for a while or permanently; the tenant's status follows."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from creditguard.audit import audit_record, snapshot
from creditguard.errors import Conflict, InvalidInput
from metering.models import Channel
from notifications.models import Notification
from notifications.services.notify import NotificationSpec, notifications_create, notify
from policies.models import Restriction, Window
from tenants.models import Tenant


def _restriction_payload(restriction: Restriction) -> dict[str, object]:
    """What the tenant is told of a restriction: never its internal reason."""
    channel = restriction.channel
    return {
        "channel": channel.code if channel else None,
        "channel_name": channel.name if channel else None,
        "kind": restriction.kind,
        "limit_units": restriction.limit_units,
        "window": restriction.window,
        "starts_at": restriction.starts_at.isoformat(),
        "ends_at": restriction.ends_at.isoformat() if restriction.ends_at else None,
        "reason": restriction.customer_reason,
    }


def _end_payload(restriction: Restriction, *, ended: str, ended_at: datetime) -> dict[str, object]:
    """The end of a restriction: ``ended`` is "lifted" (by staff) or "expired" (its end
    came), ``ended_at`` when."""
    return {**_restriction_payload(restriction), "ended": ended, "ended_at": ended_at.isoformat()}


def tenant_status_refresh(*, tenant: Tenant, now: datetime) -> str:
    """Derive the tenant's status from its restrictions not yet ended (in force or
    scheduled): a whole-tenant suspension → suspended; any other → restricted; none →
    active. A closed tenant stays closed, also one closed since the caller read it (the
    status is read afresh and the update skips a closed row). Authorization reads
    restrictions only when the status is not active, so the status must never be active
    while one exists."""
    tenant.status = Tenant.objects.values_list("status", flat=True).get(pk=tenant.pk)
    if tenant.status == Tenant.Status.CLOSED:
        return tenant.status
    pending = Restriction.objects.for_tenant(tenant).filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=now), lifted_at__isnull=True
    )
    if pending.filter(channel__isnull=True, kind=Restriction.Kind.SUSPEND).exists():
        status = Tenant.Status.SUSPENDED
    elif pending.exists():
        status = Tenant.Status.RESTRICTED
    else:
        status = Tenant.Status.ACTIVE
    if status != tenant.status:
        not_closed = Tenant.objects.filter(pk=tenant.pk).exclude(status=Tenant.Status.CLOSED)
        if not not_closed.update(status=status):
            status = Tenant.Status.CLOSED
        tenant.status = status
    return status


@transaction.atomic
def restriction_apply(
    *,
    tenant: Tenant,
    channel: Channel | None,
    kind: str,
    reason: str,
    customer_reason: str,
    actor: User | None,
    limit_units: int | None = None,
    window: str = "",
    starts_at: datetime | None = None,
    duration: timedelta | None = None,
    now: datetime | None = None,
) -> Restriction:
    """Throttle (``limit_units`` per ``window``) or suspend a channel, or the whole tenant
    when ``channel`` is None, from ``starts_at`` (default now) for ``duration`` (None:
    permanent). ``reason`` is internal, for the audit trail; ``customer_reason`` is sent
    to the tenant. Audited; notified; the tenant's status follows."""
    now = now or timezone.now()
    if not reason or not reason.strip():
        raise InvalidInput("A restriction needs a reason.")
    if not customer_reason or not customer_reason.strip():
        raise InvalidInput("A restriction needs a reason for the customer: it is sent to them.")
    if kind not in Restriction.Kind.values:
        raise InvalidInput(f"Unknown restriction kind {kind!r}.")
    if kind == Restriction.Kind.THROTTLE:
        if limit_units is None or type(limit_units) is not int or limit_units < 0:
            raise InvalidInput("A throttle needs the units allowed per window (0 or more).")
        if window not in Window.values:
            raise InvalidInput("A throttle needs a window: hour or day.")
    else:
        limit_units, window = None, ""
    if duration is not None and duration <= timedelta(0):
        raise InvalidInput("A restriction's duration must be positive (or none: permanent).")
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
    starts_at = starts_at or now
    restriction = Restriction.objects.create(
        tenant=tenant,
        channel=channel,
        kind=kind,
        limit_units=limit_units,
        window=window,
        starts_at=starts_at,
        ends_at=starts_at + duration if duration else None,
        reason=reason.strip(),
        customer_reason=customer_reason.strip(),
        author=actor,
        created_at=now,
    )
    before_status = tenant.status
    tenant_status_refresh(tenant=tenant, now=now)
    notify(
        tenant=tenant,
        kind=Notification.Kind.RESTRICTION_APPLIED,
        dedupe_key=f"restriction:{restriction.pk}:applied",
        payload=_restriction_payload(restriction),
        now=now,
    )
    audit_record(
        actor=actor,
        action="restriction.apply",
        tenant=tenant,
        obj=restriction,
        before={"tenant_status": before_status},
        after={**(snapshot(restriction) or {}), "tenant_status": tenant.status},
        reason=reason.strip(),
        now=now,
    )
    return restriction


@transaction.atomic
def restriction_lift(
    *, restriction: Restriction, reason: str, actor: User | None, now: datetime | None = None
) -> Restriction:
    """Lift a restriction before its end, with an internal ``reason`` (audited); the tenant
    is told when it was lifted. Lifting twice is refused."""
    now = now or timezone.now()
    if not reason or not reason.strip():
        raise InvalidInput("Lifting a restriction needs a reason.")
    locked = Restriction.objects.select_for_update().get(pk=restriction.pk)
    if locked.lifted_at is not None:
        raise Conflict(
            f"This restriction was lifted already, at {locked.lifted_at:%Y-%m-%d %H:%M}."
        )
    if locked.ends_at is not None and locked.ends_at <= now:
        raise Conflict("This restriction has ended already.")
    before = snapshot(locked)
    locked.lifted_at, locked.lifted_by, locked.lift_reason = now, actor, reason.strip()
    locked.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    tenant = Tenant.objects.select_for_update().get(pk=locked.tenant_id)
    tenant_status_refresh(tenant=tenant, now=now)
    notify(
        tenant=tenant,
        kind=Notification.Kind.RESTRICTION_LIFTED,
        dedupe_key=f"restriction:{locked.pk}:lifted",
        payload=_end_payload(locked, ended="lifted", ended_at=now),
        now=now,
    )
    audit_record(
        actor=actor,
        action="restriction.lift",
        tenant=tenant,
        obj=locked,
        before=before,
        after={**(snapshot(locked) or {}), "tenant_status": tenant.status},
        reason=reason.strip(),
        now=now,
    )
    return locked


@transaction.atomic
def restriction_extend(
    *, restriction: Restriction, until: datetime, reason: str, actor: User | None,
    now: datetime | None = None,
) -> Restriction:  # fmt: skip
    """Move the end of a temporary restriction in force later, to ``until``, with an
    internal ``reason`` (audited); the tenant is told the new end (a "restriction applied"
    notice naming it, once per new end). A permanent, lifted or ended restriction, or an
    end no later than the present one, is refused."""
    now = now or timezone.now()
    if not reason or not reason.strip():
        raise InvalidInput("Extending a restriction needs a reason.")
    locked = Restriction.objects.select_for_update().get(pk=restriction.pk)
    if locked.lifted_at is not None:
        raise Conflict("This restriction was lifted already: apply a new one instead.")
    if locked.ends_at is None:
        raise Conflict("This restriction is permanent: there is no end to extend.")
    if locked.ends_at <= now:
        raise Conflict("This restriction has ended already: apply a new one instead.")
    if until <= locked.ends_at:
        raise InvalidInput("The new end must be later than the present one.")
    before = snapshot(locked)
    locked.ends_at = until
    locked.save(update_fields=["ends_at"])
    tenant = Tenant.objects.get(pk=locked.tenant_id)
    notify(
        tenant=tenant,
        kind=Notification.Kind.RESTRICTION_APPLIED,
        dedupe_key=f"restriction:{locked.pk}:extended:{until.isoformat()}",
        payload=_restriction_payload(locked),
        now=now,
    )
    audit_record(
        actor=actor,
        action="restriction.extend",
        tenant=tenant,
        obj=locked,
        before=before,
        after=snapshot(locked),
        reason=reason.strip(),
        now=now,
    )
    return locked


# Restrictions that ended within this window are told to their tenants (once each).
ENDED_NOTICE_WINDOW = timedelta(days=7)


def restrictions_expire(*, now: datetime | None = None) -> int:
    """Tell tenants that restrictions ended by themselves (and when: their ``ends_at``),
    and bring the status of tenants whose restrictions have ended up to date (beat runs
    this; authorization already ignores ended restrictions). Returns how many tenants
    changed status. Safe to run twice or in parallel: the "lifted" notification's key is
    unique."""
    now = now or timezone.now()
    ended = Restriction.objects.filter(
        lifted_at__isnull=True, ends_at__lte=now, ends_at__gt=now - ENDED_NOTICE_WINDOW
    ).select_related("channel")
    notifications_create(
        specs=[
            NotificationSpec(
                tenant_id=restriction.tenant_id,
                kind=Notification.Kind.RESTRICTION_LIFTED,
                dedupe_key=f"restriction:{restriction.pk}:lifted",
                payload=_end_payload(
                    restriction, ended="expired", ended_at=restriction.ends_at or now
                ),
            )
            for restriction in ended
        ],
        now=now,
    )
    changed = 0
    candidates = Tenant.objects.filter(
        status__in=[Tenant.Status.RESTRICTED, Tenant.Status.SUSPENDED]
    ).values_list("pk", flat=True)
    for tenant_id in candidates:
        with transaction.atomic():
            tenant = Tenant.objects.select_for_update().get(pk=tenant_id)
            before = tenant.status
            if tenant_status_refresh(tenant=tenant, now=now) != before:
                audit_record(
                    actor=None,
                    action="restriction.expire",
                    tenant=tenant,
                    obj=tenant,
                    before={"tenant_status": before},
                    after={"tenant_status": tenant.status},
                    reason="Restriction ended",
                    now=now,
                )
                changed += 1
    return changed
