"""Limit adjustment requests (policy: limits are adjusted individually on request): a
customer asks for other included credits on a channel; staff approve — a new limit rule
version through ``limit_rule_set``, under its notice rules — or decline with a reason the
customer reads. Every step is audited; the customer is notified of the decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import Conflict, InvalidInput, input_error
from metering.models import Channel
from notifications.models import Notification
from notifications.services.notify import notify
from policies.models import LimitRequest
from policies.selectors import effective_rule
from policies.services.rules import limit_rule_set
from tenants.models import Tenant

# Far beyond any real channel's month, and within PostgreSQL's bigint with room to add.
MAX_UNITS = 10**12
MAX_TEXT = 2000


def _refused(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, errors=[input_error([field], message)])


def _units(value: Any, field: str, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_UNITS:
        raise _refused(field, f"{what} must be a whole number from 0 to {MAX_UNITS:,}.")
    return value


def _text(value: Any, field: str, what: str) -> str:
    text = (value or "").strip() if isinstance(value, str) else ""
    if not text:
        raise _refused(field, f"{what} is required.")
    if len(text) > MAX_TEXT or "\x00" in text:
        raise _refused(field, f"{what} must be at most {MAX_TEXT} characters of text.")
    return text


def _fields(request: LimitRequest) -> dict[str, Any]:
    return {
        "channel": request.channel.code,
        "status": request.status,
        "included_units": request.included_units,
        "current_included_units": request.current_included_units,
        "expected_volume": request.expected_volume,
        "approved_included_units": request.approved_included_units,
        "effective_from": request.effective_from,
        "customer_reason": request.customer_reason,
    }


@transaction.atomic
def limit_request_create(
    *,
    tenant: Tenant,
    channel: Channel,
    included_units: int,
    expected_volume: int,
    reason: str,
    requested_by: User | None,
    now: datetime | None = None,
) -> LimitRequest:
    """Record a tenant's request for ``included_units`` credits per period on an active
    ``channel``, with its reason and the volume it expects, audited. Refuses the credits it
    has already (``InvalidInput``) and a second open request on the channel (``Conflict``):
    the partial unique index decides between concurrent requests, so one is recorded."""
    now = now or timezone.now()
    if not channel.active:
        raise _refused("channel", "Limits can be requested on active channels only.")
    included_units = _units(included_units, "included_units", "The credits asked for")
    expected_volume = _units(expected_volume, "expected_volume", "The expected volume")
    reason = _text(reason, "reason", "A reason")
    current = effective_rule(tenant=tenant, channel=channel, at=now).included_units
    if included_units == current:
        raise _refused("included_units", f"Your included credits are {current:,} already.")
    request = LimitRequest(
        tenant=tenant, channel=channel, included_units=included_units,
        current_included_units=current, expected_volume=expected_volume, reason=reason,
        requested_by=requested_by, requested_at=now,
    )  # fmt: skip
    try:
        with transaction.atomic():
            request.save()
    except IntegrityError:
        raise Conflict(
            "There is an open request for this channel already: wait for its decision.",
            errors=[input_error(["channel"], "an open request exists")],
        ) from None  # fmt: skip
    audit_record(
        actor=requested_by, action="limit_request.create", tenant=tenant, obj=request,
        before=None, after=_fields(request), reason=reason, now=now,
    )  # fmt: skip
    return request


def _lock_open(limit_request: LimitRequest) -> LimitRequest:
    locked = (
        LimitRequest.objects.select_for_update()
        .select_related("tenant", "channel")
        .get(pk=limit_request.pk)
    )
    if locked.status != LimitRequest.Status.OPEN:
        raise Conflict(f"This request was {locked.status} already.")
    return locked


@transaction.atomic
def limit_request_approve(
    *,
    limit_request: LimitRequest,
    reason: str,
    actor: User | None,
    included_units: int | None = None,
    customer_reason: str = "",
    now: datetime | None = None,
) -> LimitRequest:
    """Approve an open request: the tenant's included credits on the channel become
    ``included_units`` (default: what it asked for) by ``limit_rule_set``, so more credits
    apply at once and fewer only after ``LIMIT_NOTICE_DAYS`` and from a period start.
    ``reason`` is internal (the rule version and the audit trail); ``customer_reason`` is
    sent with the decision. Audited; the customer is notified. Exactly once: the request's
    row is locked, and a request no longer open is refused (``Conflict``)."""
    now = now or timezone.now()
    reason = _text(reason, "reason", "A reason")
    customer_reason = (customer_reason or "").strip()
    locked = _lock_open(limit_request)
    units = locked.included_units if included_units is None else included_units
    units = _units(units, "included_units", "The approved credits")
    before = _fields(locked)
    change = limit_rule_set(
        tenant=locked.tenant, channel=locked.channel, actor=actor, included_units=units,
        reason=f"Limit request #{locked.pk}: {reason}", now=now,
    )  # fmt: skip
    locked.status = LimitRequest.Status.APPROVED
    locked.decided_at, locked.decided_by = now, actor
    locked.customer_reason = customer_reason
    locked.approved_included_units = units
    # The change's first version holds the included credits (the only term it changes).
    locked.rule = change.versions[0]
    locked.effective_from = change.versions[0].effective_from
    locked.save()
    audit_record(
        actor=actor, action="limit_request.approve", tenant=locked.tenant, obj=locked,
        before=before, after={**_fields(locked), "rule_version": locked.rule.version},
        reason=reason, now=now,
    )  # fmt: skip
    _notify(locked, Notification.Kind.LIMIT_REQUEST_APPROVED, now=now)
    return locked


@transaction.atomic
def limit_request_decline(
    *,
    limit_request: LimitRequest,
    customer_reason: str,
    actor: User | None,
    now: datetime | None = None,
) -> LimitRequest:
    """Decline an open request with a reason the customer reads (required), audited and
    notified; the terms stay as they are. Exactly once, as ``limit_request_approve``."""
    now = now or timezone.now()
    customer_reason = _text(customer_reason, "customer_reason", "A reason for the customer")
    locked = _lock_open(limit_request)
    before = _fields(locked)
    locked.status = LimitRequest.Status.DECLINED
    locked.decided_at, locked.decided_by = now, actor
    locked.customer_reason = customer_reason
    locked.save()
    audit_record(
        actor=actor, action="limit_request.decline", tenant=locked.tenant, obj=locked,
        before=before, after=_fields(locked), reason=customer_reason, now=now,
    )  # fmt: skip
    _notify(locked, Notification.Kind.LIMIT_REQUEST_DECLINED, now=now)
    return locked


def _notify(request: LimitRequest, kind: str, *, now: datetime) -> None:
    """The decision in figures; ``notifications/messages.py`` words it in the tenant's
    language."""
    channel = request.channel
    notify(
        tenant=request.tenant,
        kind=kind,
        dedupe_key=f"limit_request:{request.pk}:{request.status}",
        payload={
            "channel": channel.code,
            "channel_name": channel.name,
            "unit": channel.unit,
            "requested_included_units": request.included_units,
            "before_included_units": request.current_included_units,
            "included_units": request.approved_included_units,
            "effective_from": request.effective_from.isoformat()
            if request.effective_from
            else None,
            "reason": request.customer_reason,
        },
        now=now,
    )
