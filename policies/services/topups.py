"""Top-ups (policy § 6): offers of credit packs, accepted once, and automatic top-ups."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from creditguard.audit import audit_record, snapshot
from creditguard.errors import Conflict, InvalidInput, NotFound
from metering.models import Channel, Grant
from metering.services.evaluation_request import request_evaluation
from metering.services.ledger import balance_lock, grant_create
from metering.services.periods import period_bounds, period_get_or_open
from notifications.models import Notification
from notifications.services.notify import notify
from policies.models import AutoTopUp, TopUp, TopUpOffer, TopUpPack
from tenants.models import Tenant

# Purchased credits are drawn after included and promotional ones that expire with them.
PURCHASED_PRIORITY = 200


@transaction.atomic
def topup_offer_create(
    *,
    tenant: Tenant,
    pack: TopUpPack,
    source: str = TopUpOffer.Source.STAFF,
    actor: User | None = None,
    ttl: timedelta | None = None,
    now: datetime | None = None,
) -> TopUpOffer:
    """Offer a pack to a tenant, open for ``ttl`` (default ``TOPUP_OFFER_TTL_SECONDS``)."""
    now = now or timezone.now()
    if not pack.active:
        raise InvalidInput("This pack is no longer offered.")
    offer = TopUpOffer.objects.create(
        public_id=uuid.uuid4(), tenant=tenant, channel_id=pack.channel_id, pack=pack,
        units=pack.units, price=pack.price, currency=pack.currency, source=source,
        created_at=now,
        expires_at=now + (ttl or timedelta(seconds=settings.TOPUP_OFFER_TTL_SECONDS)),
    )  # fmt: skip
    audit_record(
        actor=actor, action="topup_offer.create", tenant=tenant, obj=offer, before=None,
        after=snapshot(offer), reason=f"{source} offer", now=now,
    )  # fmt: skip
    if source == TopUpOffer.Source.STAFF:
        channel = Channel.objects.get(pk=offer.channel_id)
        notify(
            tenant=tenant,
            kind=Notification.Kind.TOPUP_OFFER,
            dedupe_key=f"topup_offer:{offer.public_id}",
            payload={"channel": channel.code, "channel_name": channel.name,
                     "offer": offer_payload(offer)},
            now=now,
        )  # fmt: skip
    return offer


def offer_payload(offer: TopUpOffer) -> dict[str, object]:
    return {
        "id": str(offer.public_id),
        "units": offer.units,
        "price": str(offer.price),
        "currency": offer.currency,
        "expires_at": offer.expires_at.isoformat(),
    }


@transaction.atomic
def topup_offer_accept(
    *,
    tenant: Tenant,
    public_id: uuid.UUID,
    automatic: bool = False,
    now: datetime | None = None,
) -> TopUp:
    """Accept an offer: book a purchased grant of its units in the current period, valid
    for ``TOPUP_VALIDITY_DAYS``, and its fee, exactly once. The offer row is locked, so a
    second acceptance — even at the same moment — waits and answers with the first's
    top-up."""
    now = now or timezone.now()
    offer = (
        TopUpOffer.objects.for_tenant(tenant).select_for_update()
        .filter(public_id=public_id).first()
    )  # fmt: skip
    if offer is None:
        raise NotFound("No such top-up offer.")
    if offer.status == TopUpOffer.Status.ACCEPTED:
        return TopUp.objects.get(offer=offer)
    if offer.status != TopUpOffer.Status.OPEN or offer.expires_at <= now:
        state = "expired" if offer.expires_at <= now else f"was {offer.status}"
        raise Conflict(f"This offer is no longer open (it {state}).")
    channel = Channel.objects.get(pk=offer.channel_id)
    period = period_get_or_open(tenant=tenant, bounds=period_bounds(tenant=tenant, at=now))
    # Valid for TOPUP_VALIDITY_DAYS, across periods: the close carries what is left of
    # it into the next period (policies.services.close).
    grant = grant_create(
        tenant=tenant, channel=channel, period=period, kind=Grant.Kind.PURCHASED,
        units=offer.units, priority=PURCHASED_PRIORITY,
        expires_at=now + timedelta(days=settings.TOPUP_VALIDITY_DAYS),
        reason=f"Top-up {offer.public_id}", now=now,
    )  # fmt: skip
    offer.status, offer.accepted_at = TopUpOffer.Status.ACCEPTED, now
    offer.save(update_fields=["status", "accepted_at"])
    topup = TopUp.objects.create(
        tenant=tenant, channel=channel, period=period, offer=offer, grant=grant,
        units=offer.units, price=offer.price, currency=offer.currency, automatic=automatic,
        created_at=now,
    )  # fmt: skip
    audit_record(
        actor=None, actor_label="automatic top-up" if automatic else f"tenant {tenant.slug}",
        action="topup.book", tenant=tenant, obj=topup, before=None, after=snapshot(topup),
        reason=f"Offer {offer.public_id} accepted", now=now,
    )  # fmt: skip
    notify(
        tenant=tenant,
        kind=Notification.Kind.TOPUP_BOOKED,
        dedupe_key=f"topup:{topup.pk}",
        payload={"channel": channel.code, "channel_name": channel.name, "units": topup.units,
                 "price": str(topup.price), "currency": topup.currency, "period": period.label},
        now=now,
    )  # fmt: skip
    request_evaluation()
    return topup


@transaction.atomic
def auto_topup_run(
    *, tenant: Tenant, channel: Channel, now: datetime | None = None
) -> TopUp | None:
    """Buy the configured pack when the remaining credits have fallen to the threshold,
    at most ``max_per_period`` times a period. Runs under the balance's row lock, so
    parallel runs buy once."""
    now = now or timezone.now()
    setting = (
        AutoTopUp.objects.for_tenant(tenant).select_related("pack")
        .filter(channel=channel, enabled=True).first()
    )  # fmt: skip
    if setting is None:
        return None
    period = period_get_or_open(tenant=tenant, bounds=period_bounds(tenant=tenant, at=now))
    balance = balance_lock(tenant=tenant, channel=channel, period=period, now=now)
    if balance.remaining > setting.threshold_units:
        return None
    bought = (
        TopUp.objects.for_tenant(tenant)
        .filter(channel=channel, period=period, automatic=True)
        .count()
    )
    if bought >= setting.max_per_period:
        return None
    offer = topup_offer_create(
        tenant=tenant, pack=setting.pack, source=TopUpOffer.Source.AUTOMATIC, now=now
    )
    return topup_offer_accept(tenant=tenant, public_id=offer.public_id, automatic=True, now=now)
