"""Deliveries: e-mail in the tenant's language, signed webhooks, retries, 410, SSRF."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from notifications.models import Delivery, Notification
from notifications.services.deliver import deliveries_due, delivery_attempt
from notifications.services.notify import notify
from notifications.services.webhooks import webhook_endpoint_create
from tests.conftest import World
from tests.notifications.receiver import Receiver, signature_is_valid

PAYLOAD = {
    "channel": "sms",
    "channel_name": "SMS",
    "unit": "segment",
    "period": "2026-11",
    "used": 850,
    "available": 1000,
    "percent": 85,
    "threshold": 80,
    "limit_reached_on": "2026-11-23",
    "offer": {"id": "x", "units": 500, "price": "29.00", "currency": "EUR", "expires_at": "x"},
}


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(autouse=True)
def locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def warn(tenant, key="k1") -> Notification:
    notification = notify(tenant=tenant, kind="threshold_warning", dedupe_key=key, payload=PAYLOAD)
    assert notification is not None
    return notification


def deliver_all() -> list[str]:
    return [delivery_attempt(delivery_id=pk) for pk in deliveries_due()]


@pytest.mark.parametrize(
    ("language", "subject", "line"),
    [
        (
            "en",
            "SMS: 85% of your included credits used",
            "At this rate you reach your limit on 23 November 2026.",
        ),
        (
            "de",
            "SMS: 85\u00a0% Ihres Inklusivkontingents verbraucht",
            "erreichen Sie Ihr Limit am 23. November 2026.",
        ),
    ],
)
def test_email_is_in_the_tenants_language_with_figures_offer_and_links(
    world: World, language, subject, line
):
    world.alpha.language = language
    world.alpha.save()
    warn(world.alpha)
    assert deliver_all() == ["delivered"]
    message = mail.outbox[0]
    assert message.to == [world.alpha.contact_email]
    assert message.subject == f"[CreditGuard] {subject}"
    assert line in message.body
    price = "29,00\u00a0€" if language == "de" else "€29.00"
    assert f"500 Einheiten für {price}" in message.body or f"500 units for {price}" in message.body
    assert "/dashboard/" in message.body and "/policy/" in message.body
    assert getattr(message, "alternatives")[0][1] == "text/html"  # noqa: B009 - EmailMultiAlternatives


def test_webhook_is_signed_per_standard_webhooks(world: World, receiver):
    endpoint = webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    notification = warn(world.alpha)
    assert sorted(deliver_all()) == ["delivered", "delivered"]
    [received] = receiver.received
    assert signature_is_valid(endpoint.secret, received)
    assert not signature_is_valid("whsec_" + "A" * 32, received)
    body = json.loads(received.body)
    assert body["type"] == "threshold_warning"
    assert body["data"]["id"] == str(notification.public_id) and body["data"]["threshold"] == 80
    assert received.headers["webhook-id"] == f"msg_{notification.public_id.hex}"


def test_failed_webhook_is_retried_with_backoff_and_the_same_id(world: World, receiver):
    receiver.status = 503
    webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    world.alpha.contact_email = ""
    world.alpha.save()
    warn(world.alpha)
    assert deliver_all() == ["pending"]
    delivery = Delivery.objects.get()
    assert (delivery.attempts, delivery.last_error) == (1, "HTTP 503")
    assert 3 <= (delivery.next_attempt_at - timezone.now()).total_seconds() <= 7
    assert deliveries_due() == []
    receiver.status = 200
    assert [delivery_attempt(delivery_id=delivery.pk, now=delivery.next_attempt_at)] == [
        "delivered"
    ]
    assert (
        len({r.headers["webhook-id"] for r in receiver.received}) == 1
        and len(receiver.received) == 2
    )


def test_retry_after_is_honoured(world: World, receiver):
    receiver.status = 429
    receiver.extra_headers = {"Retry-After": "3600"}
    webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    world.alpha.contact_email = ""
    world.alpha.save()
    warn(world.alpha)
    deliver_all()
    delivery = Delivery.objects.get()
    assert (delivery.next_attempt_at - timezone.now()).total_seconds() >= 3590


def test_410_disables_the_endpoint(world: World, receiver):
    receiver.status = 410
    endpoint = webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    world.alpha.contact_email = ""
    world.alpha.save()
    warn(world.alpha)
    assert deliver_all() == ["failed"]
    endpoint.refresh_from_db()
    assert not endpoint.active and "410" in endpoint.disabled_reason
    warn(world.alpha, key="k2")
    assert not Delivery.objects.filter(notification__dedupe_key="k2").exists()


def test_delivery_gives_up_after_the_retry_schedule(world: World, receiver, settings):
    settings.DELIVERY_RETRY_DELAYS = [1, 1]
    receiver.status = 500
    webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    world.alpha.contact_email = ""
    world.alpha.save()
    warn(world.alpha)
    delivery = Delivery.objects.get()
    statuses = [
        delivery_attempt(delivery_id=delivery.pk, now=timezone.now() + timedelta(minutes=m))
        for m in range(3)
    ]
    assert statuses == ["pending", "pending", "failed"]


def test_a_claimed_delivery_is_not_sent_twice_at_once(world: World, receiver):
    webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    world.alpha.contact_email = ""
    world.alpha.save()
    warn(world.alpha)
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(
        status="sending", lease_until=timezone.now() + timedelta(minutes=2)
    )
    assert delivery_attempt(delivery_id=delivery.pk) == "sending"
    assert receiver.received == []
    # Its worker died: once the lease lapses, the retry sweep sends it.
    later = timezone.now() + timedelta(minutes=3)
    assert deliveries_due(now=later) == [delivery.pk]
    assert delivery_attempt(delivery_id=delivery.pk, now=later) == "delivered"


def test_a_private_address_is_refused_at_send_time_too(world: World, receiver, settings):
    webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    world.alpha.contact_email = ""
    world.alpha.save()
    warn(world.alpha)
    assert deliver_all() == ["pending"]
    assert "non-public" in Delivery.objects.get().last_error
    assert receiver.received == []


def test_redirects_are_not_followed(world: World, receiver):
    receiver.status = 302
    receiver.extra_headers = {"Location": "http://169.254.169.254/latest/meta-data"}
    webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    world.alpha.contact_email = ""
    world.alpha.save()
    warn(world.alpha)
    assert deliver_all() == ["pending"]
    assert Delivery.objects.get().last_error == "HTTP 302"
