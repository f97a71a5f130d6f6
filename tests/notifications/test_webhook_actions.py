"""What a tenant does with its webhook endpoints besides creating them: rotate the signing
secret, send a test event, retry a failed delivery; and the audit of the changes."""

from __future__ import annotations

import json
import uuid

import pytest
from django.conf import settings
from django.utils import timezone

from creditguard.errors import Conflict, NotFound
from creditguard.models import AuditEntry
from notifications.models import Delivery, Notification
from notifications.selectors import notifications_listed, webhook_deliveries_recent
from notifications.services.deliver import deliveries_due, delivery_attempt
from notifications.services.webhook_deliveries import delivery_retry, webhook_endpoint_test
from notifications.services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_secret_rotate,
)
from tests.conftest import World
from tests.factories import UserFactory
from tests.notifications.receiver import Receiver, signature_is_valid


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def test_creating_and_deleting_an_endpoint_is_audited_without_the_secret(world: World, receiver):
    person = UserFactory.create(username="olga")
    endpoint = webhook_endpoint_create(tenant=world.alpha, url=receiver.url, actor=person)
    created = AuditEntry.objects.get(action="webhook_endpoint.create")
    assert (created.actor, created.tenant, created.object_id) == (
        person,
        world.alpha,
        str(endpoint.pk),
    )
    assert created.after == {"url": receiver.url, "kinds": []}
    assert endpoint.secret not in json.dumps(created.after)
    webhook_endpoint_delete(tenant=world.alpha, public_id=endpoint.public_id, actor=person)
    assert AuditEntry.objects.get(action="webhook_endpoint.delete").before == {"url": receiver.url}


def test_rotating_the_secret_signs_from_then_on_with_the_new_one(world: World, receiver):
    endpoint = webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    old = endpoint.secret
    person = UserFactory.create(username="olga")
    new = webhook_endpoint_secret_rotate(
        tenant=world.alpha, public_id=endpoint.public_id, actor=person
    )
    assert new.startswith("whsec_") and new != old
    endpoint.refresh_from_db()
    assert endpoint.secret == new
    entry = AuditEntry.objects.get(action="webhook_endpoint.rotate_secret")
    assert entry.actor == person and new not in json.dumps(entry.after)
    webhook_endpoint_test(tenant=world.alpha, public_id=endpoint.public_id)
    assert [delivery_attempt(delivery_id=pk) for pk in deliveries_due()] == ["delivered"]
    (received,) = receiver.received
    assert signature_is_valid(new, received) and not signature_is_valid(old, received)


def test_another_tenants_endpoint_is_not_found(world: World, receiver):
    endpoint = webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    with pytest.raises(NotFound):
        webhook_endpoint_secret_rotate(tenant=world.beta, public_id=endpoint.public_id)
    with pytest.raises(NotFound):
        webhook_endpoint_test(tenant=world.beta, public_id=endpoint.public_id)
    with pytest.raises(NotFound):
        webhook_endpoint_test(tenant=world.alpha, public_id=uuid.uuid4())
    assert not Delivery.objects.exists()


def test_a_test_event_goes_to_that_endpoint_only_signed_and_is_not_listed(world: World, receiver):
    wanted = webhook_endpoint_create(tenant=world.alpha, url=receiver.url, kinds=["welcome"])
    webhook_endpoint_create(tenant=world.alpha, url=receiver.url + "/other")
    delivery = webhook_endpoint_test(tenant=world.alpha, public_id=wanted.public_id)
    assert (delivery.transport, delivery.endpoint_id, delivery.status) == (
        "webhook",
        wanted.pk,
        "pending",
    )
    assert Delivery.objects.count() == 1  # no e-mail, no other endpoint
    assert not notifications_listed(tenant=world.alpha).exists()
    assert [delivery_attempt(delivery_id=pk) for pk in deliveries_due()] == ["delivered"]
    (received,) = receiver.received
    assert signature_is_valid(wanted.secret, received)
    body = json.loads(received.body)
    assert body["type"] == "webhook_test"
    assert body["data"]["tenant"] == "alpha"
    assert body["data"]["message"]["subject"] == "Test event from CreditGuard"


def test_a_test_event_to_a_disabled_or_deleted_endpoint_is_refused(world: World, receiver):
    endpoint = webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    endpoint.active = False
    endpoint.save(update_fields=["active"])
    with pytest.raises(Conflict):
        webhook_endpoint_test(tenant=world.alpha, public_id=endpoint.public_id)
    webhook_endpoint_delete(tenant=world.alpha, public_id=endpoint.public_id)
    with pytest.raises(NotFound):
        webhook_endpoint_test(tenant=world.alpha, public_id=endpoint.public_id)


def _failed_delivery(world: World, receiver) -> Delivery:
    endpoint = webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    delivery = webhook_endpoint_test(tenant=world.alpha, public_id=endpoint.public_id)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.FAILED,
        attempts=len(settings.DELIVERY_RETRY_DELAYS) + 1,  # the schedule's end
        last_error="HTTP 500",
    )
    delivery.refresh_from_db()
    return delivery


def test_retrying_a_failed_delivery_sends_it_again_once(world: World, receiver):
    delivery = _failed_delivery(world, receiver)
    retried = delivery_retry(tenant=world.alpha, delivery_id=delivery.pk)
    assert retried.status == "pending" and retried.next_attempt_at <= timezone.now()
    assert deliveries_due() == [delivery.pk]
    assert delivery_attempt(delivery_id=delivery.pk) == "delivered"
    assert len(receiver.received) == 1


def test_a_retried_delivery_that_fails_again_fails_at_once(world: World, receiver):
    receiver.status = 500
    delivery = _failed_delivery(world, receiver)
    delivery_retry(tenant=world.alpha, delivery_id=delivery.pk)
    assert delivery_attempt(delivery_id=delivery.pk) == "failed"


def test_only_a_failed_delivery_of_ones_own_can_be_retried(world: World, receiver):
    delivery = _failed_delivery(world, receiver)
    with pytest.raises(NotFound):
        delivery_retry(tenant=world.beta, delivery_id=delivery.pk)
    delivery_retry(tenant=world.alpha, delivery_id=delivery.pk)
    with pytest.raises(Conflict):
        delivery_retry(tenant=world.alpha, delivery_id=delivery.pk)  # pending now


def test_recent_deliveries_are_the_tenants_webhook_deliveries_newest_first(world: World, receiver):
    mine = webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    theirs = webhook_endpoint_create(tenant=world.beta, url=receiver.url)
    first = webhook_endpoint_test(tenant=world.alpha, public_id=mine.public_id)
    second = webhook_endpoint_test(tenant=world.alpha, public_id=mine.public_id)
    webhook_endpoint_test(tenant=world.beta, public_id=theirs.public_id)
    recent = list(webhook_deliveries_recent(tenant=world.alpha, limit=10))
    assert [d.pk for d in recent] == [second.pk, first.pk]
    assert recent[0].notification.kind == Notification.Kind.WEBHOOK_TEST
