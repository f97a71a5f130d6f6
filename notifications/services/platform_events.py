"""Platform events: the billable facts told to the operator's billing system through its
platform webhook endpoints (docs/API.md, "Platform events").

An outbox: the producer calls ``platform_event_emit`` inside the transaction of the fact,
which writes the event and one delivery per platform endpoint that wants its type; the
workers send them after the commit, signed and retried exactly like notifications
(``notifications.services.deliver``). No event is sent for a fact that rolled back, and
none is lost when a receiver is down: the delivery waits in the table for the retry
sweep. Delivery is at least once; the event id, derived from the fact, is the receiver's
key to drop a repeat."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from notifications.models import Delivery, PlatformEvent, WebhookEndpoint
from notifications.tasks import enqueue_deliveries


def platform_event_id(*, event_type: str, fact: str) -> str:
    """``evt_`` and 32 hex digits of SHA-256 over the type and the fact's key: the same
    fact gives the same id, whoever emits it and however often."""
    return "evt_" + hashlib.sha256(f"{event_type}:{fact}".encode()).hexdigest()[:32]


@transaction.atomic
def platform_event_emit(
    *,
    event_type: str,
    fact: str,
    tenant_id: int,
    payload: dict[str, Any],
    now: datetime | None = None,
) -> PlatformEvent | None:
    """Record the event of a fact once and plan its deliveries: one webhook delivery per
    active platform endpoint that wants ``event_type``, enqueued after commit. Returns the
    event when this call created it, None when the fact was told already (then nothing
    new is delivered). ``fact`` names the fact stably (``period:<id>``); ``payload`` is
    JSON as sent (money as decimal strings). Concurrent emits of one fact meet on the
    unique event id: one inserts, the other waits for its commit and finds it."""
    now = now or timezone.now()
    event, created = PlatformEvent.objects.get_or_create(
        event_id=platform_event_id(event_type=event_type, fact=fact),
        defaults={"type": event_type, "fact": fact, "tenant_id": tenant_id, "payload": payload,
                  "created_at": now},
    )  # fmt: skip
    if not created:
        return None
    endpoints = WebhookEndpoint.objects.filter(
        tenant__isnull=True, active=True, deleted_at__isnull=True
    )
    deliveries = Delivery.objects.bulk_create(
        [
            Delivery(event=event, transport=Delivery.Transport.WEBHOOK, endpoint=endpoint,
                     next_attempt_at=now, created_at=now)
            for endpoint in endpoints
            if endpoint.wants(event_type)
        ]
    )  # fmt: skip
    ids = [delivery.pk for delivery in deliveries]
    if ids:
        transaction.on_commit(lambda: enqueue_deliveries(ids))
    return event
