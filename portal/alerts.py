"""The alerts section of the notifications page: per active channel the thresholds of the
policy in force (read-only) and the tenant's own (``AlertThreshold``), and the addresses
that receive the warnings besides the contact address (``AlertRecipient``). A fixed
number of queries, whatever the number of channels, alerts and recipients."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from metering.models import Channel
from notifications.models import AlertRecipient
from policies.models import AlertThreshold
from policies.selectors import effective_rules
from tenants.models import Tenant


@dataclass(frozen=True)
class ChannelAlerts:
    channel: Channel
    # The rule in force's warning thresholds: the policy's, which the customer cannot
    # remove.
    policy: tuple[int, ...]
    own: list[AlertThreshold] = field(default_factory=list)


@dataclass(frozen=True)
class Alerts:
    channels: list[ChannelAlerts]
    recipients: list[AlertRecipient]
    contact_email: str


def alerts_for(*, tenant: Tenant, now: datetime | None = None) -> Alerts:
    now = now or timezone.now()
    channels = list(Channel.objects.filter(active=True).order_by("sort_order", "name"))
    rules = effective_rules(tenant=tenant, channels=channels, at=now)
    own: dict[int, list[AlertThreshold]] = {}
    for threshold in AlertThreshold.objects.for_tenant(tenant).order_by("percent"):
        own.setdefault(threshold.channel_id, []).append(threshold)
    return Alerts(
        channels=[
            ChannelAlerts(
                channel=channel,
                policy=rules[channel.pk].warning_thresholds,
                own=own.get(channel.pk, []),
            )
            for channel in channels
        ],
        recipients=list(AlertRecipient.objects.for_tenant(tenant).order_by("email", "pk")),
        contact_email=tenant.contact_email,
    )
