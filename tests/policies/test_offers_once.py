"""No duplicate top-up offers: one open offer per balance and pack, enforced by the
database; accepting closes the rest; no offer that no notification mentions."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from metering.models import Channel
from metering.services.ingest import usage_record_batch
from notifications.models import Notification
from policies.models import TopUpOffer, TopUpPack
from policies.services.evaluate import evaluate_pending, evaluate_sweep
from policies.services.topups import topup_offer_accept, topup_offer_create
from tests.conftest import World, event
from tests.factories import TenantFactory
from tests.policies.helpers import balance_of, set_rule


def _pack(units: int = 500, price: str = "29.00") -> TopUpPack:
    return TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=units, price=Decimal(price)
    )


def _offers_mentioned(tenant) -> set[str]:
    return {
        n.payload["offer"]["id"]
        for n in Notification.objects.filter(tenant=tenant, covered_by="")
        if "offer" in n.payload
    }


@pytest.mark.usefixtures("frozen_clock")
def test_the_80_and_90_percent_warnings_share_one_offer(world: World):
    _pack()
    set_rule(world.alpha, "sms", included_units=1000)
    world.alice_api.ingest([event("a", channel="sms", quantity=820)])
    evaluate_pending()
    world.alice_api.ingest([event("b", channel="sms", quantity=100)])
    evaluate_pending()
    offer = TopUpOffer.objects.get(tenant=world.alpha)
    assert _offers_mentioned(world.alpha) == {str(offer.public_id)}
    assert (
        Notification.objects.filter(tenant=world.alpha, payload__offer__isnull=False).count() == 2
    )


@pytest.mark.usefixtures("frozen_clock")
def test_accepting_an_offer_closes_the_other_open_offers(world: World):
    small, large = _pack(), _pack(units=2000, price="99.00")
    set_rule(world.alpha, "sms", included_units=1000)
    first = topup_offer_create(tenant=world.alpha, pack=small)
    second = topup_offer_create(tenant=world.alpha, pack=large)
    topup_offer_accept(tenant=world.alpha, public_id=second.public_id)
    first.refresh_from_db()
    assert first.status == TopUpOffer.Status.WITHDRAWN
    assert world.alice_api.get("/api/v1/topup-offers").json()["results"] == []
    assert world.alice_api.post(f"/api/v1/topup-offers/{first.public_id}/accept").status_code == 409


@pytest.mark.usefixtures("frozen_clock")
def test_the_database_refuses_a_second_open_offer_of_a_pack_for_a_balance(world: World):
    pack = _pack()
    set_rule(world.alpha, "sms", included_units=1000)
    offer = topup_offer_create(tenant=world.alpha, pack=pack)
    assert offer.balance == balance_of(world.alpha)
    with pytest.raises(IntegrityError), transaction.atomic():
        TopUpOffer.objects.create(
            public_id=uuid.uuid4(), tenant=world.alpha, channel=pack.channel, pack=pack,
            balance=offer.balance, units=1, price=1, currency="EUR",
            created_at=timezone.now(), expires_at=timezone.now() + timedelta(days=1),
        )  # fmt: skip


@pytest.mark.usefixtures("frozen_clock")
def test_an_expired_offer_makes_way_for_a_new_one(world: World):
    pack = _pack()
    set_rule(world.alpha, "sms", included_units=1000)
    old = topup_offer_create(
        tenant=world.alpha, pack=pack, ttl=timedelta(minutes=5),
        now=timezone.now() - timedelta(hours=1),
    )  # fmt: skip
    new = topup_offer_create(tenant=world.alpha, pack=pack)
    old.refresh_from_db()
    assert (old.status, new.status) == ("expired", "open")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_evaluations_leave_no_orphan_offer(frozen_clock):
    _pack()
    tenant = TenantFactory.create(slug="offer-race")
    set_rule(tenant, "sms", included_units=100)
    usage_record_batch(tenant=tenant, payload={"events": [event("x", channel="sms", quantity=95)]})
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            evaluate_sweep()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    offers = {str(o.public_id) for o in TopUpOffer.objects.filter(tenant=tenant)}
    assert len(offers) == 1
    assert _offers_mentioned(tenant) == offers
