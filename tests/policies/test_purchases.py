"""Buying a top-up pack directly: one write path with offer acceptance, exactly once per
purchase key, audited with the person who bought it."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection

from creditguard.errors import Conflict, NotFound
from creditguard.models import AuditEntry
from metering.models import Channel, Grant
from notifications.models import Notification
from policies.models import TopUp, TopUpOffer, TopUpPack
from policies.services.purchases import topup_pack_buy
from policies.services.topups import topup_offer_create
from tests.conftest import World
from tests.factories import TenantFactory, UserFactory
from tests.policies.helpers import balance_of, set_rule


@pytest.fixture
def pack(db) -> TopUpPack:
    return TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=500, price=Decimal("19.90")
    )


def test_buying_a_pack_books_its_credits_valid_for_the_validity_days(world: World, pack):
    set_rule(world.alpha, "sms", included_units=100)
    buyer = UserFactory.create(username="buyer")
    topup = topup_pack_buy(
        tenant=world.alpha, pack_id=pack.pk, purchase_key=uuid.uuid4(), actor=buyer
    )
    assert (topup.units, topup.price, topup.automatic) == (500, Decimal("19.90"), False)
    assert topup.grant.kind == Grant.Kind.PURCHASED
    assert topup.grant.expires_at == topup.created_at + timedelta(days=settings.TOPUP_VALIDITY_DAYS)
    assert topup.offer.source == TopUpOffer.Source.PURCHASE
    assert balance_of(world.alpha).available == 600
    created = AuditEntry.objects.get(action="topup_offer.create")
    assert created.actor_id == buyer.pk
    assert AuditEntry.objects.filter(action="topup.book").count() == 1
    assert Notification.objects.filter(tenant=world.alpha, kind="topup_booked").count() == 1


def test_the_same_purchase_key_buys_once(world: World, pack):
    key = uuid.uuid4()
    first = topup_pack_buy(tenant=world.alpha, pack_id=pack.pk, purchase_key=key, actor=None)
    second = topup_pack_buy(tenant=world.alpha, pack_id=pack.pk, purchase_key=key, actor=None)
    assert first.pk == second.pk
    assert TopUp.objects.count() == 1
    assert AuditEntry.objects.filter(action="topup.book").count() == 1


def test_another_key_buys_again(world: World, pack):
    for _ in range(2):
        topup_pack_buy(tenant=world.alpha, pack_id=pack.pk, purchase_key=uuid.uuid4(), actor=None)
    assert TopUp.objects.count() == 2


def test_an_open_offer_of_the_pack_is_withdrawn_by_the_purchase(world: World, pack):
    offer = topup_offer_create(tenant=world.alpha, pack=pack)
    topup_pack_buy(tenant=world.alpha, pack_id=pack.pk, purchase_key=uuid.uuid4(), actor=None)
    offer.refresh_from_db()
    assert offer.status == TopUpOffer.Status.WITHDRAWN
    assert AuditEntry.objects.filter(
        action="topup_offer.withdraw", object_id=str(offer.pk)
    ).exists()


def test_an_inactive_pack_is_not_for_sale(world: World, pack):
    pack.active = False
    pack.save()
    with pytest.raises(NotFound):
        topup_pack_buy(tenant=world.alpha, pack_id=pack.pk, purchase_key=uuid.uuid4(), actor=None)
    assert not TopUp.objects.exists()


def test_a_closed_tenant_buys_nothing(world: World, pack):
    world.alpha.status = "closed"
    world.alpha.save()
    with pytest.raises(Conflict):
        topup_pack_buy(tenant=world.alpha, pack_id=pack.pk, purchase_key=uuid.uuid4(), actor=None)


def test_another_tenants_purchase_key_is_refused(world: World, pack):
    key = uuid.uuid4()
    topup_pack_buy(tenant=world.gamma, pack_id=pack.pk, purchase_key=key, actor=None)
    with pytest.raises(Conflict):
        topup_pack_buy(tenant=world.alpha, pack_id=pack.pk, purchase_key=key, actor=None)
    assert not TopUp.objects.filter(tenant=world.alpha).exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_double_submit_at_the_same_moment_buys_once(frozen_clock):
    pack = TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=500, price=Decimal("19.90")
    )
    tenant = TenantFactory.create(slug="double-submit")
    set_rule(tenant, "sms", included_units=100)
    key = uuid.uuid4()
    barrier = threading.Barrier(4)
    bought: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            bought.append(
                topup_pack_buy(tenant=tenant, pack_id=pack.pk, purchase_key=key, actor=None).pk
            )
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
    assert len(set(bought)) == 1 and len(bought) == 4
    assert TopUp.objects.filter(tenant=tenant).count() == 1
    assert balance_of(tenant).available == 600
    assert AuditEntry.objects.filter(tenant=tenant, action="topup.book").count() == 1
