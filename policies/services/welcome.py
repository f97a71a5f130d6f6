"""A new tenant's welcome: its terms per channel and the fee schedules that apply to it.

The welcome is the tenant's notice of those schedules (policy: extra fees are told in
advance): each takes effect for it ``FEE_NOTICE_DAYS`` after the welcome, or at its own
later start. Without it a tenant created after a global schedule was notified would
never be charged by it until staff notified again."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef

from metering.models import Channel
from notifications.models import Notification
from notifications.services.notify import NotificationSpec, notifications_create
from policies.models import FeeSchedule, FeeScheduleNotice
from policies.selectors import effective_rules
from policies.services.fees import fee_notices_record, fee_schedule_terms
from tenants.models import Tenant


def fee_schedules_published(*, channel: Channel, at: datetime) -> list[FeeSchedule]:
    """The global schedules of a channel that tenants were told of and that still matter
    at ``at``: the newest one started by then, and those announced to start later; in
    order of their start. Drafts (never notified) are not published."""
    notified = FeeSchedule.objects.filter(
        Exists(FeeScheduleNotice.objects.filter(schedule=OuterRef("pk"))),
        channel=channel,
        tenant__isnull=True,
    ).prefetch_related("tiers")
    started = notified.filter(effective_from__lte=at).order_by("-effective_from", "-pk").first()
    announced = notified.filter(effective_from__gt=at).order_by("effective_from", "pk")
    return [*([started] if started else []), *announced]


@transaction.atomic
def tenant_welcome(*, tenant: Tenant, now: datetime) -> Notification | None:
    """Tell a new tenant its terms in force (included credits, hard ceiling, what happens
    past the credits, carry-over) for every active channel, and the published fee schedules,
    whose notices it records at ``now``. Sent once per tenant (its dedupe key); inside the
    transaction that created the tenant, after its rules."""
    channels = list(Channel.objects.filter(active=True).order_by("pk"))
    rules = effective_rules(tenant=tenant, channels=channels, at=now)
    labels = Channel.labels_by_code([channel.code for channel in channels])
    entries = []
    for channel in channels:
        rule = rules[channel.pk]
        fees = []
        for schedule in fee_schedules_published(channel=channel, at=now):
            _, effective_at = fee_notices_record(schedule=schedule, tenants=[tenant], now=now)
            fees.append(fee_schedule_terms(schedule, effective_at))
        entries.append({
            "channel": channel.code, "channel_name": channel.name, "unit": channel.unit,
            "channel_labels": labels.get(channel.code, {}),
            "included_units": rule.included_units, "hard_limit": rule.hard_limit,
            "action_past_limit": rule.action, "restrict_units": rule.restrict_units,
            "restrict_window": rule.restrict_window, "carry_over": rule.carry_over,
            "fee_schedules": fees,
        })  # fmt: skip
    created = notifications_create(
        specs=[
            NotificationSpec(
                tenant_id=tenant.pk,
                kind=Notification.Kind.WELCOME,
                dedupe_key=f"welcome:{tenant.pk}",
                payload={"tenant_name": tenant.name, "channels": entries},
            )
        ],
        now=now,
    )
    return created[0] if created else None
