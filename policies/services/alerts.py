"""A customer's own warning thresholds (the portal's alerts): added and removed by the
tenant's admins and owners, validated, audited, scoped to the tenant. Evaluation reads
them beside the rule's thresholds (``policies.services.warnings``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import Conflict, InvalidInput, NotFound, input_error
from metering.models import Channel
from policies.models import AlertThreshold
from policies.models.alerts import ALERT_PERCENT_MAX, ALERT_PERCENT_MIN
from tenants.models import Tenant

# A channel's own thresholds beside its rule's: enough for a ladder of warnings, few
# enough that a channel's warnings stay worth reading.
MAX_THRESHOLDS_PER_CHANNEL = 10


def _refused(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, errors=[input_error([field], message)])


def _fields(threshold: AlertThreshold) -> dict[str, Any]:
    return {"channel": threshold.channel.code, "percent": threshold.percent}


@transaction.atomic
def alert_threshold_add(
    *,
    tenant: Tenant,
    channel: Channel,
    percent: int,
    actor: User | None,
    now: datetime | None = None,
) -> AlertThreshold:
    """Warn the tenant when its use of ``channel`` reaches ``percent`` of its credits (a
    whole number from 1 to 1000, as a rule's thresholds), audited
    (``alert_threshold.add``). Refuses an inactive channel and a bad percentage
    (``InvalidInput``), a percentage the channel has already or more than
    ``MAX_THRESHOLDS_PER_CHANNEL`` (``Conflict``). The tenant's row is locked (no key
    update: ingestion's foreign keys never wait on it), so two additions at once cannot
    pass the count together; the unique constraint decides a duplicate."""
    now = now or timezone.now()
    if not channel.active:
        raise _refused("channel", "Alerts can be set on active channels only.")
    if type(percent) is not int or not ALERT_PERCENT_MIN <= percent <= ALERT_PERCENT_MAX:
        raise _refused(
            "percent",
            f"The percentage must be a whole number from {ALERT_PERCENT_MIN} to "
            f"{ALERT_PERCENT_MAX}.",
        )
    Tenant.objects.select_for_update(no_key=True).filter(pk=tenant.pk).first()
    existing = set(
        AlertThreshold.objects.for_tenant(tenant)
        .filter(channel=channel)
        .values_list("percent", flat=True)
    )
    if percent in existing:
        raise Conflict(
            f"An alert at {percent} % is set on {channel.code} already.",
            errors=[input_error(["percent"], "exists")],
        )
    if len(existing) >= MAX_THRESHOLDS_PER_CHANNEL:
        raise Conflict(
            f"At most {MAX_THRESHOLDS_PER_CHANNEL} alerts per channel.",
            errors=[input_error(["percent"], "too many")],
        )
    try:
        with transaction.atomic():
            threshold = AlertThreshold.objects.create(
                tenant=tenant, channel=channel, percent=percent, created_by=actor, created_at=now
            )
    except IntegrityError:
        raise Conflict(
            f"An alert at {percent} % is set on {channel.code} already.",
            errors=[input_error(["percent"], "exists")],
        ) from None
    audit_record(
        actor=actor, action="alert_threshold.add", tenant=tenant, obj=threshold, before=None,
        after=_fields(threshold), reason="", now=now,
    )  # fmt: skip
    return threshold


@transaction.atomic
def alert_threshold_remove(
    *,
    tenant: Tenant,
    threshold_id: int,
    actor: User | None,
    now: datetime | None = None,
) -> AlertThreshold:
    """Stop warning at one of the tenant's own thresholds, audited
    (``alert_threshold.remove``); the removed threshold is returned (for the caller to
    say which). Another tenant's or an unknown id is ``NotFound``
    alike; removed twice at once, one removes it and the other finds nothing."""
    now = now or timezone.now()
    threshold = (
        AlertThreshold.objects.for_tenant(tenant)
        .select_for_update()
        .filter(pk=threshold_id)
        .first()
    )
    if threshold is None:
        raise NotFound("No such alert.")
    audit_record(
        actor=actor, action="alert_threshold.remove", tenant=tenant, obj=threshold,
        before=_fields(threshold), after=None, reason="", now=now,
    )  # fmt: skip
    threshold.delete()
    return threshold
