"""Top-up offers and acceptance, automatic top-ups."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from creditguard.models import AuditEntry
from metering.models import Channel, Grant
from policies.models import AutoTopUp, TopUp, TopUpOffer, TopUpPack
from policies.services.topups import auto_topup_run, topup_offer_create
from tests.conftest import World, event
from tests.policies.helpers import balance_of, set_rule


@pytest.fixture
def pack(db) -> TopUpPack:
    return TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=500, price=Decimal("19.90")
    )


def test_open_offers_are_listed_newest_first(world: World, pack):
    # A balance has one open offer of a pack: three packs.
    larger, largest = (
        TopUpPack.objects.create(channel=pack.channel, units=units, price=Decimal("49.90"))
        for units in (1000, 2000)
    )
    expired = topup_offer_create(
        tenant=world.alpha,
        pack=largest,
        ttl=timedelta(seconds=1),
        now=timezone.now() - timedelta(hours=2),
    )
    older = topup_offer_create(
        tenant=world.alpha, pack=larger, now=timezone.now() - timedelta(hours=1)
    )
    newer = topup_offer_create(tenant=world.alpha, pack=pack)
    topup_offer_create(tenant=world.gamma, pack=pack)
    body = world.alice_api.get("/api/v1/topup-offers").json()
    assert [o["id"] for o in body["results"]] == [str(newer.public_id), str(older.public_id)]
    assert str(expired.public_id) not in str(body)
    assert body["results"][0] | {"id": None, "created_at": None, "expires_at": None} == {
        "id": None,
        "channel": "sms",
        "units": 500,
        "price": "19.90",
        "currency": "EUR",
        "status": "open",
        "created_at": None,
        "expires_at": None,
    }
    assert "next" in body


def test_accepting_books_the_credits_and_the_fee_once(world: World, pack):
    set_rule(world.alpha, "sms", included_units=100)
    offer = topup_offer_create(tenant=world.alpha, pack=pack)
    path = f"/api/v1/topup-offers/{offer.public_id}/accept"
    first = world.alice_api.post(path)
    assert first.status_code == 200, first.content
    assert first.json()["units"] == 500 and first.json()["price"] == "19.90"
    assert world.bob_api.post(path).json() == first.json()
    assert balance_of(world.alpha).available == 600
    topup = TopUp.objects.get()
    assert (topup.price, topup.grant.kind, topup.grant.units) == (
        Decimal("19.90"),
        Grant.Kind.PURCHASED,
        500,
    )
    assert AuditEntry.objects.filter(action="topup.book").count() == 1
    assert world.alice_api.get("/api/v1/topup-offers").json()["results"] == []


def test_purchased_credits_are_drawn_after_included_ones(world: World, pack):
    set_rule(world.alpha, "sms", included_units=100)
    offer = topup_offer_create(tenant=world.alpha, pack=pack)
    world.alice_api.post(f"/api/v1/topup-offers/{offer.public_id}/accept")
    world.alice_api.ingest([event("u", channel="sms", quantity=150)])
    grants = {
        g.kind: g.drawn_units
        for g in Grant.objects.filter(tenant=world.alpha, balance__channel__code="sms")
    }
    assert grants == {"included": 100, "purchased": 50}


def test_an_expired_offer_cannot_be_accepted(world: World, pack):
    offer = topup_offer_create(tenant=world.alpha, pack=pack, ttl=timedelta(minutes=5))
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        response = world.alice_api.post(f"/api/v1/topup-offers/{offer.public_id}/accept")
    assert response.status_code == 409
    assert not TopUp.objects.exists()


def test_another_tenants_offer_is_404(world: World, pack):
    offer = topup_offer_create(tenant=world.alpha, pack=pack)
    assert world.gamma_api.post(f"/api/v1/topup-offers/{offer.public_id}/accept").status_code == 404
    assert world.gamma_api.post("/api/v1/topup-offers/nonsense/accept").status_code == 404
    assert TopUpOffer.objects.get().status == "open"


def test_automatic_top_up_buys_at_the_threshold_at_most_n_times(world: World, pack):
    set_rule(world.alpha, "sms", included_units=1000)
    AutoTopUp.objects.create(
        tenant=world.alpha, channel=pack.channel, pack=pack, threshold_units=100, max_per_period=2
    )
    sms = pack.channel
    world.alice_api.ingest([event("a", channel="sms", quantity=800)])
    assert auto_topup_run(tenant=world.alpha, channel=sms) is None  # 200 remain
    world.alice_api.ingest([event("b", channel="sms", quantity=150)])
    assert auto_topup_run(tenant=world.alpha, channel=sms).automatic  # 50 remain → buy
    assert auto_topup_run(tenant=world.alpha, channel=sms) is None  # 550 remain
    world.alice_api.ingest([event("c", channel="sms", quantity=500)])
    assert auto_topup_run(tenant=world.alpha, channel=sms) is not None
    world.alice_api.ingest([event("d", channel="sms", quantity=600)])
    assert auto_topup_run(tenant=world.alpha, channel=sms) is None  # at most 2 a period
    assert TopUp.objects.filter(tenant=world.alpha, automatic=True).count() == 2
    assert balance_of(world.alpha).available == 2000
