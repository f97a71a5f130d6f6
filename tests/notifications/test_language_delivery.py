"""The tenant's language end to end: the e-mail, the webhook's ``message`` and the in-app
list of a German tenant are German, with the channel's German name and the time that
matters."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from metering.models import Channel
from notifications.models import Notification
from notifications.services.deliver import deliveries_due, delivery_attempt
from notifications.services.webhooks import webhook_endpoint_create
from policies.models import PolicyVersion
from policies.services.policy import policy_version_publish
from policies.services.restrictions import restriction_apply
from tests.conftest import World
from tests.notifications.receiver import Receiver
from tests.notifications.test_language import ENGLISH

pytestmark = pytest.mark.usefixtures("frozen_clock")  # 20 November 2026, 12:00 UTC


@pytest.fixture(autouse=True)
def locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def german(world: World):
    world.alpha.language = "de"
    world.alpha.save()
    return world.alpha


def throttle_calls_for_two_hours(tenant) -> None:
    restriction_apply(
        tenant=tenant, channel=Channel.objects.get(code="call"), kind="throttle",
        limit_units=10, window="hour", duration=timedelta(hours=2), reason="Spamwelle",
        customer_reason="Spamwelle", actor=None,
    )  # fmt: skip


def deliver_all() -> list[str]:
    return [delivery_attempt(delivery_id=pk) for pk in deliveries_due()]


def without_links(text: str) -> str:
    return re.sub(r"\S+@\S+|https?://\S+", "", text)


def test_a_notification_carries_its_channels_name_and_unit_in_every_language(german):
    throttle_calls_for_two_hours(german)
    payload = Notification.objects.get(tenant=german, kind="restriction_applied").payload
    assert payload["channel_labels"] == {
        "en": {"name": "Phone calls", "unit": "minute"},
        "de": {"name": "Telefonate", "unit": "Minute"},
    }


def test_a_german_tenants_throttle_email_is_german_and_says_until_what_time(german):
    throttle_calls_for_two_hours(german)
    assert deliver_all() == ["delivered"]
    [message] = mail.outbox
    assert message.subject == "[CreditGuard] Telefonate: Versand eingeschränkt"
    assert (
        "Der Versand über Telefonate ist bis 20. November 2026, 15:00 MEZ auf 10 Einheiten "
        "pro Stunde begrenzt." in message.body
    )
    assert message.body.startswith("Guten Tag Alpha,")
    html = getattr(message, "alternatives")[0][0]  # noqa: B009 - EmailMultiAlternatives
    for text in (message.body, html):
        assert not ENGLISH.search(without_links(str(text))), text


def test_the_webhook_carries_the_message_in_the_tenants_language(german, receiver):
    webhook_endpoint_create(tenant=german, url=receiver.url)
    throttle_calls_for_two_hours(german)
    assert sorted(deliver_all()) == ["delivered", "delivered"]
    data = json.loads(receiver.received[0].body)["data"]
    assert data["message"]["language"] == "de"
    assert data["message"]["subject"] == "Telefonate: Versand eingeschränkt"
    assert "bis 20. November 2026, 15:00 MEZ" in data["message"]["lines"][0]
    assert data["limit_units"] == 10  # the figures stay as they are


def test_the_in_app_list_carries_the_message_in_the_tenants_language(world: World, german):
    throttle_calls_for_two_hours(german)
    [row] = world.alice_api.get("/api/v1/notifications").json()["results"]
    assert row["message"]["language"] == "de"
    assert row["message"]["subject"] == "Telefonate: Versand eingeschränkt"
    world.alpha.language = "en"
    world.alpha.save()
    [row] = world.alice_api.get("/api/v1/notifications").json()["results"]
    assert row["message"]["subject"] == "Phone calls: sending is limited"
    assert "until 20 November 2026, 15:00 CET" in row["message"]["lines"][0]


def test_a_policy_change_reaches_a_german_tenant_in_german(german):
    version = PolicyVersion.objects.create(
        label="1.1", text_de="Deutsch", text_en="English", material=True,
        summary_de="Warnungen kommen früher.", summary_en="Warnings come earlier.",
        effective_from=timezone.now() + timedelta(days=45),
    )  # fmt: skip
    policy_version_publish(version=version, actor=None)
    payload = Notification.objects.get(tenant=german, kind="policy_change").payload
    assert set(payload) == {"version", "effective_from", "summary"}
    deliver_all()
    [message] = [m for m in mail.outbox if m.to == [german.contact_email]]
    assert message.subject == "[CreditGuard] Fair-Use-Richtlinie 1.1"
    assert "Die Fair-Use-Richtlinie 1.1 gilt ab 4. Januar 2027, 13:00 MEZ." in message.body
    assert "Was sich ändert: Warnungen kommen früher." in message.body
    assert "Warnings come earlier" not in message.body
