"""A customer buys a top-up pack directly (policy § 6), not only an offer made to it.

One write path for every purchase: the pack becomes an offer of the buyer's own
(``source=purchase``, audited with the person who bought it) and is accepted at once by
``topup_offer_accept``, which books the purchased grant, the ``TopUp``, its audit row and
its ``topup_booked`` notification exactly as for any accepted offer."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from creditguard.audit import audit_record, snapshot
from creditguard.errors import Conflict, NotFound
from metering.services.ledger import balance_lock
from metering.services.periods import period_bounds, period_get_or_open
from policies.models import TopUp, TopUpOffer, TopUpPack
from policies.services.topups import open_offer, topup_offer_accept, topup_offer_create
from tenants.models import Tenant


@transaction.atomic
def topup_pack_buy(
    *,
    tenant: Tenant,
    pack_id: int,
    purchase_key: uuid.UUID,
    actor: User | None,
    now: datetime | None = None,
) -> TopUp:
    """Buy ``pack_id`` for the current period: credits valid for ``TOPUP_VALIDITY_DAYS``,
    at the pack's price. ``purchase_key`` is the buyer's idempotency key (the portal's
    form carries a fresh one): it becomes the offer's public id, so the same key buys
    once, and a second call — a double submit, even at the same moment — answers with
    the first's top-up. Concurrent purchases serialize on the balance's row lock; the
    loser's offer insert meets the first's public id and it returns that top-up.

    An open offer of the same pack for the balance (a warning's) is withdrawn first,
    audited: buying the pack meets the shortage it was made for, as accepting any offer
    withdraws the others. An inactive or unknown pack, and a closed tenant, are refused."""
    now = now or timezone.now()
    earlier = TopUpOffer.objects.for_tenant(tenant).filter(public_id=purchase_key).first()
    if earlier is not None:
        return _the_purchase_of(tenant=tenant, offer=earlier, now=now)
    if tenant.status == Tenant.Status.CLOSED:
        raise Conflict("This account is closed: nothing can be bought for it.")
    pack = TopUpPack.objects.select_related("channel").filter(pk=pack_id, active=True).first()
    if pack is None or not pack.channel.active:
        raise NotFound("No such top-up pack on sale.")
    period = period_get_or_open(tenant=tenant, bounds=period_bounds(tenant=tenant, at=now))
    balance = balance_lock(tenant=tenant, channel=pack.channel, period=period, now=now)
    waiting = open_offer(balance=balance, pack=pack, now=now)
    if waiting is not None:
        _withdraw(waiting, tenant=tenant, actor=actor, now=now)
    try:
        offer = topup_offer_create(
            tenant=tenant, pack=pack, source=TopUpOffer.Source.PURCHASE, actor=actor,
            balance=balance, public_id=purchase_key, now=now,
        )  # fmt: skip
    except Conflict:
        # The key was taken meanwhile: a concurrent submit of the same form, committed
        # while this one waited for the balance's lock.
        earlier = TopUpOffer.objects.for_tenant(tenant).filter(public_id=purchase_key).first()
        if earlier is None:
            raise
        return _the_purchase_of(tenant=tenant, offer=earlier, now=now)
    return topup_offer_accept(tenant=tenant, public_id=offer.public_id, now=now)


def _the_purchase_of(*, tenant: Tenant, offer: TopUpOffer, now: datetime) -> TopUp:
    """The top-up an earlier use of the key bought; a key used for anything but a
    purchase is refused."""
    if offer.source != TopUpOffer.Source.PURCHASE:
        raise Conflict("This purchase key was used already.")
    return topup_offer_accept(tenant=tenant, public_id=offer.public_id, now=now)


def _withdraw(offer: TopUpOffer, *, tenant: Tenant, actor: User | None, now: datetime) -> None:
    before = snapshot(offer)
    offer.status = TopUpOffer.Status.WITHDRAWN
    offer.save(update_fields=["status"])
    audit_record(
        actor=actor, action="topup_offer.withdraw", tenant=tenant, obj=offer, before=before,
        after=snapshot(offer), reason="The pack was bought directly", now=now,
    )  # fmt: skip
