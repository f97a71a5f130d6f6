"""A tenant's hand on its webhook deliveries: send a test event to one endpoint, retry a
delivery that failed. Both are deliveries like any other, sent by the workers (claimed
once, signed, pinned to vetted addresses, retried with backoff) and listed with them."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from creditguard.errors import Conflict, NotFound
from notifications.models import Delivery, Notification
from notifications.services.webhooks import webhook_endpoint_of
from notifications.tasks import enqueue_deliveries
from tenants.models import Tenant


@transaction.atomic
def webhook_endpoint_test(
    *, tenant: Tenant, public_id: uuid.UUID, now: datetime | None = None
) -> Delivery:
    """Send a ``webhook_test`` event to one endpoint of the tenant, whatever kinds it
    wants, and return its delivery (sent after commit). The event is a notification
    recorded as a test (``covered_by`` ``TEST``): neither listed in-app nor e-mailed, and
    it goes to this endpoint only. A deleted or another tenant's endpoint is
    ``NotFound``; a disabled one (it answered 410) is refused (``Conflict``)."""
    now = now or timezone.now()
    endpoint = webhook_endpoint_of(tenant=tenant, public_id=public_id)
    if not endpoint.active:
        raise Conflict("This endpoint is disabled; it receives no events.")
    public = uuid.uuid4()
    notification = Notification.objects.create(
        public_id=public,
        tenant=tenant,
        kind=Notification.Kind.WEBHOOK_TEST,
        dedupe_key=f"webhook_test:{endpoint.public_id}:{public}",
        payload={"endpoint": str(endpoint.public_id), "url": endpoint.url},
        covered_by=Notification.TEST,
        created_at=now,
    )
    delivery = Delivery.objects.create(
        notification=notification, transport=Delivery.Transport.WEBHOOK, endpoint=endpoint,
        next_attempt_at=now, created_at=now,
    )  # fmt: skip
    transaction.on_commit(lambda: enqueue_deliveries([delivery.pk]))
    return delivery


@transaction.atomic
def delivery_retry(*, tenant: Tenant, delivery_id: int, now: datetime | None = None) -> Delivery:
    """Send a failed webhook delivery of the tenant once more, now (after commit), with
    the same ``webhook-id``; returns it pending. It keeps its attempts, so if this attempt
    fails too it is failed again at once rather than retried for days. Only a failed
    delivery is retried (``Conflict`` otherwise, also to a disabled or deleted endpoint);
    another tenant's is ``NotFound``. The retry is a conditional update from ``failed``,
    so of two concurrent retries one wins and the other is refused."""
    now = now or timezone.now()
    delivery = (
        Delivery.objects.select_related("endpoint")
        .filter(
            pk=delivery_id,
            notification__tenant=tenant,
            transport=Delivery.Transport.WEBHOOK,
        )
        .first()
    )
    if delivery is None:
        raise NotFound("No such delivery.")
    endpoint = delivery.endpoint
    if endpoint is None or not endpoint.active or endpoint.deleted_at is not None:
        raise Conflict("The endpoint of this delivery is disabled or deleted.")
    retried = Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.FAILED).update(
        status=Delivery.Status.PENDING, next_attempt_at=now, lease_until=None
    )
    if not retried:
        raise Conflict("Only a failed delivery can be retried.")
    delivery.refresh_from_db()
    transaction.on_commit(lambda: enqueue_deliveries([delivery.pk]))
    return delivery
