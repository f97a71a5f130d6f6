"""Retry-After is honoured within the retry schedule; no answer of a receiver can crash
the delivery task or leave a delivery claimed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from notifications.models import Delivery
from notifications.services.deliver import retry_after_seconds, retry_delay
from notifications.services.notify import notify
from notifications.services.webhooks import webhook_endpoint_create
from notifications.tasks import deliver_task
from tests.conftest import World
from tests.notifications.receiver import Receiver

SCHEDULE = [5, 60]


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.DELIVERY_RETRY_DELAYS = SCHEDULE
    receiver = Receiver(status=429).start()
    yield receiver
    receiver.stop()


def failing_delivery(world: World, receiver: Receiver, retry_after: str) -> Delivery:
    receiver.extra_headers = {"Retry-After": retry_after}
    webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
    world.alpha.contact_email = ""
    world.alpha.save()
    notify(tenant=world.alpha, kind="limit_reached", dedupe_key="k", payload={"channel": "sms"})
    return Delivery.objects.get()


@pytest.mark.parametrize(
    "retry_after",
    [
        "1e15",
        "99999999999999999999",
        "9" * 5000,
        "inf",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ],
)
def test_an_absurd_retry_after_waits_the_longest_delay_of_the_schedule(
    world: World, receiver: Receiver, retry_after
):
    delivery = failing_delivery(world, receiver, retry_after)
    result = deliver_task.apply(args=(delivery.pk,))
    assert result.successful(), result.traceback
    delivery.refresh_from_db()
    assert (delivery.status, delivery.lease_until, delivery.last_error) == (
        "pending",
        None,
        "HTTP 429",
    )
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert max(SCHEDULE) - 2 <= wait <= max(SCHEDULE)


@pytest.mark.parametrize(
    "retry_after",
    ["-5", "-inf", "nan", "0", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "Mon, 99 Foo 2020"],
)
def test_a_past_negative_or_unreadable_retry_after_keeps_the_schedule(
    world: World, receiver: Receiver, retry_after
):
    delivery = failing_delivery(world, receiver, retry_after)
    assert deliver_task.apply(args=(delivery.pk,)).successful()
    delivery.refresh_from_db()
    assert delivery.status == "pending"
    assert 3 <= (delivery.next_attempt_at - timezone.now()).total_seconds() <= 7


def test_a_retry_after_within_the_schedule_is_honoured(world: World, receiver: Receiver):
    delivery = failing_delivery(world, receiver, "30")
    assert deliver_task.apply(args=(delivery.pk,)).successful()
    delivery.refresh_from_db()
    assert 28 <= (delivery.next_attempt_at - timezone.now()).total_seconds() <= 30


@hypothesis_settings(max_examples=300, deadline=None, derandomize=True)
@given(header=st.one_of(st.none(), st.text(), st.from_regex(r"-?[0-9.eE+]{1,40}", fullmatch=True)))
def test_any_retry_after_gives_a_delay_within_the_schedule(header):
    longest = 36000
    seconds = retry_after_seconds(header, longest=longest)
    assert seconds is None or 0 <= seconds <= longest
    for attempt in (1, 11):
        delay = retry_delay(attempt=attempt, retry_after=seconds, schedule=[5] * 10 + [longest])
        assert 0 < delay <= longest * 1.2
        timezone.now() + timedelta(seconds=delay)  # never overflows
