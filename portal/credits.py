"""The credits page's figures: packs on sale, purchased credits still to use with their
expiry, the automatic top-up settings, and the history of top-ups and overage charges.
Seven queries whatever the length of the history: the history shows the latest
``HISTORY_ROWS`` of each kind."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import F
from django.utils import timezone

from metering.models import Channel, Grant
from policies.models import AutoTopUp, OverageCharge, TopUp, TopUpPack
from tenants.models import Tenant

HISTORY_ROWS = 50


@dataclass(frozen=True)
class ChannelCredits:
    channel: Channel
    packs: list[TopUpPack]
    auto_topup: AutoTopUp | None


@dataclass(frozen=True)
class Credits:
    channels: list[ChannelCredits]
    purchased: list[Grant]  # with .channel set: undrawn purchased credits, soonest expiry first
    topups: list[TopUp]
    charges: list[OverageCharge]


def credits_for(*, tenant: Tenant, now: datetime | None = None) -> Credits:
    now = now or timezone.now()
    channels = list(Channel.objects.filter(active=True).order_by("sort_order", "code"))
    packs: dict[int, list[TopUpPack]] = {}
    for pack in TopUpPack.objects.filter(active=True).order_by("channel_id", "units", "pk"):
        packs.setdefault(pack.channel_id, []).append(pack)
    settings = {
        setting.channel_id: setting
        for setting in AutoTopUp.objects.for_tenant(tenant).select_related("pack")
    }
    # Purchased credits live in the balance of the period they are in (the close carries
    # them on): the open grants with units left, whose expiry has not come.
    purchased = list(
        Grant.objects.for_tenant(tenant)
        .filter(kind=Grant.Kind.PURCHASED, expired_at__isnull=True, expires_at__gt=now)
        .filter(units__gt=F("drawn_units") + F("reduced_units"))
        .select_related("balance__channel")
        .order_by("expires_at", "pk")
    )
    topups = list(
        TopUp.objects.for_tenant(tenant)
        .select_related("channel", "offer", "period")
        .order_by("-created_at", "-pk")[:HISTORY_ROWS]
    )
    charges = list(
        OverageCharge.objects.for_tenant(tenant)
        .filter(units__gt=0)
        .select_related("channel", "period")
        .order_by("-period__starts_at", "channel__sort_order", "pk")[:HISTORY_ROWS]
    )
    return Credits(
        channels=[
            ChannelCredits(
                channel=channel,
                packs=packs.get(channel.pk, []),
                auto_topup=settings.get(channel.pk),
            )
            for channel in channels
        ],
        purchased=purchased,
        topups=topups,
        charges=charges,
    )
