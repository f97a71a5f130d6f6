"""Creating notifications exactly once, and planning their deliveries."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from creditguard.metrics import NOTIFICATIONS
from notifications.hooks import channel_labels
from notifications.models import AlertRecipient, Delivery, Notification, WebhookEndpoint
from notifications.tasks import enqueue_deliveries
from tenants.models import Tenant


@dataclass(frozen=True)
class NotificationSpec:
    tenant_id: int
    kind: str
    dedupe_key: str
    payload: dict[str, Any] = field(default_factory=dict)
    # What this message says in place of other notifications (a lower threshold, the
    # forecast): recorded as covered by it, so that they never arrive on their own later.
    covers: tuple[NotificationSpec, ...] = ()


# Set while history is recorded (seed_demo): notifications are kept, never sent.
_recording_history: ContextVar[bool] = ContextVar("recording_history", default=False)


@contextmanager
def history_recorded() -> Iterator[None]:
    """Within it, notifications are recorded as history (``covered_by`` ``HISTORY``):
    their keys are taken, so that they never arrive later, but they are neither delivered
    nor listed. For loading the past (the demo), whose news nobody is to receive now."""
    token = _recording_history.set(True)
    try:
        yield
    finally:
        _recording_history.reset(token)


def notifications_create(
    *, specs: Iterable[NotificationSpec], now: datetime | None = None
) -> list[Notification]:
    """Create the notifications whose dedupe key is new, with their deliveries; return
    the messages created by this call. What a spec ``covers`` is recorded alongside it,
    covered by its key, without deliveries. A unique index on the key makes this
    exactly-once under parallel and repeated calls: a key covered first is never sent
    later, and the rows are inserted in key order in one statement, so that two calls
    wait on each other's keys in one order. Deliveries are sent once the transaction
    commits."""
    now = now or timezone.now()
    history = _recording_history.get()
    rows: dict[str, tuple[NotificationSpec, str]] = {}
    for spec in specs:
        rows[spec.dedupe_key] = (spec, Notification.HISTORY if history else "")
        for covered in spec.covers:
            rows.setdefault(covered.dedupe_key, (covered, spec.dedupe_key))
    if not rows:
        return []
    ordered = [rows[key] for key in sorted(rows)]
    payloads = _with_channel_labels([spec for spec, _ in ordered])
    ours = {key: uuid.uuid4() for key in rows}
    Notification.objects.bulk_create(
        [
            Notification(
                public_id=ours[spec.dedupe_key],
                tenant_id=spec.tenant_id,
                kind=spec.kind,
                dedupe_key=spec.dedupe_key,
                payload=payload,
                covered_by=covered_by,
                created_at=now,
            )
            for (spec, covered_by), payload in zip(ordered, payloads, strict=True)
        ],
        ignore_conflicts=True,
    )
    created = list(
        Notification.objects.filter(public_id__in=list(ours.values()), covered_by="")
        .select_related("tenant")
        .order_by("pk")
    )
    deliveries_plan(notifications=created, now=now)
    if created:
        transaction.on_commit(lambda: _count(created))
    return created


def _count(created: list[Notification]) -> None:
    for notification in created:
        NOTIFICATIONS.labels(kind=notification.kind).inc()


def _with_channel_labels(specs: list[NotificationSpec]) -> list[dict[str, Any]]:
    """Each spec's payload with its channel's name and unit in every language
    (``channel_labels``), read once for all the channels of the call, so that the
    message can be written in the tenant's language whenever it is sent or read."""
    labels = channel_labels({code for spec in specs if (code := _unlabelled(spec.payload))})
    payloads = []
    for spec in specs:
        code = _unlabelled(spec.payload)
        if code in labels:
            payloads.append({**spec.payload, "channel_labels": labels[code]})
        else:
            payloads.append(spec.payload)
    return payloads


def _unlabelled(payload: dict[str, Any]) -> str:
    """The channel code of a payload that has no labels yet, else ''."""
    code = payload.get("channel")
    return code if isinstance(code, str) and "channel_labels" not in payload else ""


def notify(
    *,
    tenant: Tenant,
    kind: str,
    dedupe_key: str,
    payload: dict[str, Any],
    now: datetime | None = None,
) -> Notification | None:
    """One notification (None if its dedupe key exists already)."""
    created = notifications_create(
        specs=[NotificationSpec(tenant.pk, kind, dedupe_key, payload)], now=now
    )
    return created[0] if created else None


def deliveries_plan(*, notifications: list[Notification], now: datetime) -> list[Delivery]:
    """An e-mail delivery when the tenant has a contact address, or for a warning when it
    has alert recipients (``AlertRecipient``; whom it goes to is read when it is sent),
    and one per active webhook endpoint that wants the kind; enqueued after commit. A
    fixed number of queries: the recipients are looked up only for warnings of tenants
    without a contact address."""
    if not notifications:
        return []
    tenant_ids = {n.tenant_id for n in notifications}
    uncontacted = {
        n.tenant_id
        for n in notifications
        if not n.tenant.contact_email and n.kind in AlertRecipient.KINDS
    }
    recipients_only = (
        set(
            AlertRecipient.objects.filter(tenant_id__in=uncontacted).values_list(
                "tenant_id", flat=True
            )
        )
        if uncontacted
        else set()
    )
    endpoints: dict[int, list[WebhookEndpoint]] = defaultdict(list)
    for endpoint in WebhookEndpoint.objects.filter(
        tenant_id__in=tenant_ids, active=True, deleted_at__isnull=True
    ):
        assert endpoint.tenant_id is not None  # a platform endpoint gets no notification
        endpoints[endpoint.tenant_id].append(endpoint)
    deliveries: list[Delivery] = []
    for notification in notifications:
        if notification.tenant.contact_email or notification.tenant_id in recipients_only:
            deliveries.append(
                Delivery(notification=notification, transport=Delivery.Transport.EMAIL,
                         next_attempt_at=now, created_at=now)
            )  # fmt: skip
        deliveries.extend(
            Delivery(notification=notification, transport=Delivery.Transport.WEBHOOK,
                     endpoint=endpoint, next_attempt_at=now, created_at=now)
            for endpoint in endpoints[notification.tenant_id]
            if endpoint.wants(notification.kind)
        )  # fmt: skip
    Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    ids = list(Delivery.objects.filter(notification__in=notifications).values_list("pk", flat=True))
    if ids:
        transaction.on_commit(lambda: enqueue_deliveries(ids))
    return deliveries
