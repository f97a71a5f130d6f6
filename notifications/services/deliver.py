"""Sending deliveries: claimed once, sent outside any transaction, retried with backoff."""

from __future__ import annotations

import http.client
import json
import logging
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone, translation

from creditguard.metrics import DELIVERIES
from notifications.messages import render_message
from notifications.models import AlertRecipient, Delivery, Notification, PlatformEvent
from notifications.services.pinned import Deadline, pinned_post
from notifications.services.webhooks import (
    AddressRefused,
    webhook_host_resolve,
    webhook_port,
    webhook_sign,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    error: str = ""
    retry_after: float | None = None  # seconds the receiver asked us to wait
    give_up: bool = False  # e.g. 410 Gone: the endpoint is disabled


def deliveries_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Deliveries to (re)send: pending and due, or claimed by a worker whose lease lapsed."""
    now = now or timezone.now()
    return list(
        Delivery.objects.filter(
            Q(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
            | Q(status=Delivery.Status.SENDING, lease_until__lte=now)
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> str:
    """Claim and send one delivery; returns its new status. Safe to call twice and in
    parallel: the claim is a conditional update, so one caller sends at a time."""
    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    claimed = (
        Delivery.objects.filter(pk=delivery_id)
        .filter(
            Q(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
            | Q(status=Delivery.Status.SENDING, lease_until__lte=now)
        )
        .update(status=Delivery.Status.SENDING, lease_until=lease)
    )
    if not claimed:
        return (
            Delivery.objects.filter(pk=delivery_id).values_list("status", flat=True).first()
            or "gone"
        )
    delivery = Delivery.objects.select_related("notification__tenant", "event", "endpoint").get(
        pk=delivery_id
    )
    Delivery.objects.filter(pk=delivery_id).update(attempts=delivery.attempts + 1)
    delivery.attempts += 1
    try:
        if delivery.transport == Delivery.Transport.EMAIL:
            assert delivery.notification is not None  # events go by webhook only
            outcome = _send_email(delivery.notification)
        else:
            outcome = _send_webhook(delivery)
    except Exception as exc:
        logger.exception("delivery %s failed", delivery_id)
        outcome = Outcome(delivered=False, error=f"{exc.__class__.__name__}: {exc}")
    status = _record(delivery, outcome, timezone.now())
    DELIVERIES.labels(transport=delivery.transport, status=status).inc()
    return status


def _record(delivery: Delivery, outcome: Outcome, now: datetime) -> str:
    query = Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING)
    if outcome.delivered:
        query.update(status=Delivery.Status.DELIVERED, delivered_at=now, last_error="",
                     lease_until=None)  # fmt: skip
        return Delivery.Status.DELIVERED
    delays = settings.DELIVERY_RETRY_DELAYS
    if outcome.give_up or delivery.attempts > len(delays):
        query.update(
            status=Delivery.Status.FAILED, last_error=outcome.error[:2000], lease_until=None
        )
        return Delivery.Status.FAILED
    delay = retry_delay(attempt=delivery.attempts, retry_after=outcome.retry_after, schedule=delays)
    query.update(
        status=Delivery.Status.PENDING,
        next_attempt_at=now + timedelta(seconds=delay),
        last_error=outcome.error[:2000],
        lease_until=None,
    )
    return Delivery.Status.PENDING


def email_recipients(notification: Notification) -> list[str]:
    """Whom a notification's e-mail goes to: the tenant's contact address, and for a
    warning (``AlertRecipient.KINDS``) the tenant's alert recipients as listed when it is
    sent; each address once, whatever its case."""
    tenant = notification.tenant
    addresses = [tenant.contact_email] if tenant.contact_email else []
    if notification.kind in AlertRecipient.KINDS:
        addresses += (
            AlertRecipient.objects.for_tenant(tenant).order_by("pk").values_list("email", flat=True)
        )
    unique: dict[str, str] = {}
    for address in addresses:
        unique.setdefault(address.casefold(), address)
    return list(unique.values())


def _send_email(notification: Notification) -> Outcome:
    """One message to every recipient (``email_recipients``), all of them in To: the
    delivery stays one row, claimed, sent and retried once as a whole, so a retry never
    sends a second copy to some of them, and each sees who else was warned (all are the
    tenant's own people)."""
    tenant = notification.tenant
    recipients = email_recipients(notification)
    if not recipients:
        # The contact address and the recipients were all removed after it was planned.
        return Outcome(delivered=False, error="no recipient", give_up=True)
    message = render_message(notification, language=tenant.language)
    context = {"tenant": tenant, "message": message, "language": tenant.language}
    with translation.override(tenant.language):
        text = render_to_string("notifications/email.txt", context)
        html = render_to_string("notifications/email.html", context)
    mail = EmailMultiAlternatives(
        subject=f"[CreditGuard] {message.subject}",
        body=text,
        to=recipients,
        headers={"X-CreditGuard-Notification": str(notification.public_id)},
    )
    mail.attach_alternative(html, "text/html")
    mail.send()
    return Outcome(delivered=True)


def webhook_body(notification: Notification) -> bytes:
    """The figures of the payload and the ``message`` the tenant's e-mail says, in its
    language, for a receiver that shows it to people."""
    tenant = notification.tenant
    return json.dumps(
        {
            "type": notification.kind,
            "timestamp": notification.created_at.isoformat(),
            "data": {
                "id": str(notification.public_id),
                "tenant": tenant.slug,
                **notification.payload,
                "message": render_message(notification, language=tenant.language).as_data(),
            },
        },
        separators=(",", ":"),
        default=str,
    ).encode()


def platform_event_body(event: PlatformEvent) -> bytes:
    """A platform event as sent: its type, when the fact happened, and its figures under
    ``data`` with the event id (``webhook-id``) as ``data.id``."""
    return json.dumps(
        {
            "type": event.type,
            "timestamp": event.created_at.isoformat(),
            "data": {"id": event.event_id, **event.payload},
        },
        separators=(",", ":"),
        default=str,
    ).encode()


def _webhook_message(delivery: Delivery) -> tuple[bytes, str]:
    """The body and the ``webhook-id``: a platform event's own id, or the notification's
    ``msg_…``; the same on every attempt."""
    if delivery.event is not None:
        return platform_event_body(delivery.event), delivery.event.event_id
    notification = delivery.notification
    assert notification is not None
    return webhook_body(notification), f"msg_{notification.public_id.hex}"


def _send_webhook(delivery: Delivery) -> Outcome:
    endpoint = delivery.endpoint
    assert endpoint is not None
    if not endpoint.active:
        return Outcome(delivered=False, error="endpoint disabled", give_up=True)
    host = urlsplit(endpoint.url).hostname or ""
    # The whole send, resolving included, ends well inside the claim's lease.
    deadline = Deadline.after(settings.WEBHOOK_SEND_DEADLINE_SECONDS)
    try:
        # Resolved and vetted once; the connection goes to these addresses only.
        addresses = webhook_host_resolve(host=host, port=webhook_port(endpoint.url))
    except AddressRefused as refused:
        return Outcome(delivered=False, error=f"refused: {refused}")
    body, msg_id = _webhook_message(delivery)
    timestamp = int(timezone.now().timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "CreditGuard-Webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_sign(
            secret=endpoint.secret, msg_id=msg_id, timestamp=timestamp, body=body
        ),
    }
    try:
        status, answer_headers = pinned_post(
            url=endpoint.url, addresses=addresses[: settings.WEBHOOK_CONNECT_ADDRESSES],
            body=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            deadline=deadline,
        )  # fmt: skip
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(delivered=False, error=f"{exc.__class__.__name__}: {exc}")
    if 200 <= status < 300:
        return Outcome(delivered=True)
    if status == 410:
        endpoint.active = False
        endpoint.disabled_reason = "The receiver answered 410 Gone."
        endpoint.save(update_fields=["active", "disabled_reason"])
        return Outcome(delivered=False, error="HTTP 410 Gone: endpoint disabled", give_up=True)
    # Anything else, redirects included (never followed), is a failure to retry.
    return Outcome(
        delivered=False,
        error=f"HTTP {status}",
        retry_after=retry_after_seconds(
            answer_headers.get("Retry-After"), longest=max(settings.DELIVERY_RETRY_DELAYS)
        ),
    )


def retry_delay(*, attempt: int, retry_after: float | None, schedule: list[int]) -> float:
    """Seconds before the attempt after ``attempt`` (1-based): the schedule's delay with
    ±20 % jitter, or the receiver's ``Retry-After`` if that is longer. ``retry_after``
    comes clamped to the schedule (``retry_after_seconds``), so the result is at most
    1.2 × its longest delay and a date from it never overflows."""
    delay = schedule[min(attempt, len(schedule)) - 1] * random.uniform(0.8, 1.2)  # noqa: S311 - jitter
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(schedule)))
    return delay


def retry_after_seconds(value: str | None, *, longest: float) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from now, clamped to
    [0, ``longest``] — the schedule's longest delay, so a receiver cannot park a delivery
    beyond the schedule; None if absent or unreadable. Absurd values (``1e15``, ``inf``,
    a date in the year 9999) wait ``longest``; ``nan`` is unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - timezone.now()).total_seconds()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), float(longest))
