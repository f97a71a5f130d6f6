"""Top-ups (policy § 6): offers of credit packs, accepted once, and automatic top-ups."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from creditguard.audit import audit_record, snapshot
from creditguard.errors import Conflict, InvalidInput, NotFound
from metering.models import Balance, Channel, Grant
from metering.services.evaluation_request import request_evaluation
from metering.services.ledger import balance_lock, grant_create
from metering.services.periods import period_bounds, period_get_or_open
from notifications.models import Notification
from notifications.services.notify import notify
from policies.models import AutoTopUp, TopUp, TopUpOffer, TopUpPack
from policies.services.billing_events import topup_purchased_emit
from tenants.models import Tenant

# Purchased credits are drawn after included and promotional ones that expire with them.
PURCHASED_PRIORITY = 200


def offer_expiry(*, now: datetime, ttl: timedelta | None = None) -> datetime:
    """When an offer made at ``now`` stops being open (``TOPUP_OFFER_TTL_SECONDS``)."""
    return now + (ttl or timedelta(seconds=settings.TOPUP_OFFER_TTL_SECONDS))


def open_offer(*, balance: Balance, pack: TopUpPack, now: datetime) -> TopUpOffer | None:
    """The offer of ``pack`` open for ``balance`` at ``now``, if any."""
    return (
        TopUpOffer.objects.filter(
            balance=balance, pack=pack, status=TopUpOffer.Status.OPEN, expires_at__gt=now
        )
        .order_by("pk")
        .first()
    )


@transaction.atomic
def topup_offer_create(
    *,
    tenant: Tenant,
    pack: TopUpPack,
    source: str = TopUpOffer.Source.STAFF,
    actor: User | None = None,
    ttl: timedelta | None = None,
    balance: Balance | None = None,
    public_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> TopUpOffer:
    """Offer a pack to a tenant for a balance (default: the current period's of the pack's
    channel), open for ``ttl`` (default ``TOPUP_OFFER_TTL_SECONDS``). A balance has at most
    one open offer of a pack — a partial unique index holds it under any concurrency —
    so a second one is refused with ``Conflict`` (offers past their expiry are marked
    expired first, making way for a new one)."""
    now = now or timezone.now()
    if not pack.active:
        raise InvalidInput("This pack is no longer offered.")
    if balance is None:
        period = period_get_or_open(tenant=tenant, bounds=period_bounds(tenant=tenant, at=now))
        balance = balance_lock(tenant=tenant, channel=pack.channel, period=period, now=now)
    TopUpOffer.objects.filter(
        balance=balance, pack=pack, status=TopUpOffer.Status.OPEN, expires_at__lte=now
    ).update(status=TopUpOffer.Status.EXPIRED)
    try:
        with transaction.atomic():
            offer = TopUpOffer.objects.create(
                public_id=public_id or uuid.uuid4(), tenant=tenant, channel_id=pack.channel_id,
                pack=pack, balance=balance, units=pack.units, price=pack.price,
                currency=pack.currency, source=source, created_at=now,
                expires_at=offer_expiry(now=now, ttl=ttl),
            )  # fmt: skip
    except IntegrityError:
        raise Conflict(
            "An offer of this pack is already open for this period; accepting it closes it."
        ) from None
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
    _withdraw_the_others(offer, now)
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
    topup_purchased_emit(topup=topup, now=now)
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


def _withdraw_the_others(accepted: TopUpOffer, now: datetime) -> None:
    """The tenant's other open offers on the channel were for the same shortage, which
    the accepted one met: they close (withdrawn, audited), so nobody buys twice. The next
    warning makes a new offer if it is needed again."""
    others = list(
        TopUpOffer.objects.for_tenant(accepted.tenant)
        .select_for_update()
        .filter(channel_id=accepted.channel_id, status=TopUpOffer.Status.OPEN)
        .exclude(pk=accepted.pk)
        .order_by("pk")
    )
    for other in others:
        before = snapshot(other)
        other.status = TopUpOffer.Status.WITHDRAWN
        other.save(update_fields=["status"])
        audit_record(
            actor=None, actor_label="top-up", action="topup_offer.withdraw",
            tenant=accepted.tenant, obj=other, before=before, after=snapshot(other),
            reason=f"Offer {accepted.public_id} accepted", now=now,
        )  # fmt: skip


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
    # An open offer of the pack (a warning's) is the one bought: a balance has one.
    offer = open_offer(balance=balance, pack=setting.pack, now=now)
    if offer is None:
        try:
            offer = topup_offer_create(
                tenant=tenant, pack=setting.pack, source=TopUpOffer.Source.AUTOMATIC,
                balance=balance, now=now,
            )  # fmt: skip
        except Conflict:
            # An evaluation opened one meanwhile (it does not take the balance lock).
            offer = open_offer(balance=balance, pack=setting.pack, now=now)
            if offer is None:
                raise
    return topup_offer_accept(tenant=tenant, public_id=offer.public_id, automatic=True, now=now)
