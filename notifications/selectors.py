"""Reads of notifications shared by the API's in-app list and the portal."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Exists, OuterRef, QuerySet

from notifications.models import Delivery, Notification, NotificationRead
from tenants.models import Tenant


def notifications_listed(*, tenant: Tenant) -> QuerySet[Notification]:
    """The tenant's in-app list, newest first: the messages, not what they covered (a
    covered notification — said by another, or the demo's history — holds only its key).
    The tenant comes with each row: its language and time zone write the message."""
    return Notification.objects.for_tenant(tenant).filter(covered_by="").select_related("tenant")


def notifications_for_person(
    *, tenant: Tenant, user: Any, unread_only: bool = False
) -> QuerySet[Notification]:
    """``notifications_listed`` with ``is_read``: whether this person has read each."""
    read = NotificationRead.objects.filter(notification=OuterRef("pk"), user=user)
    listed = notifications_listed(tenant=tenant).annotate(is_read=Exists(read))
    return listed.filter(is_read=False) if unread_only else listed


def notifications_unread_count(*, tenant: Tenant, user: Any) -> int:
    return notifications_for_person(tenant=tenant, user=user, unread_only=True).count()


def webhook_deliveries_recent(*, tenant: Tenant, limit: int) -> QuerySet[Delivery]:
    """The tenant's latest webhook deliveries, newest first, with their endpoint and
    notification (one query), whatever the endpoint's state."""
    return (
        Delivery.objects.filter(notification__tenant=tenant, transport=Delivery.Transport.WEBHOOK)
        .select_related("endpoint", "notification")
        .order_by("-created_at", "-pk")[:limit]
    )


def deliveries_waiting() -> list[tuple[str, str, int]]:
    """(transport, status, count) of the deliveries not yet finished — pending (due now
    or waiting to retry) and sending — in one statement over the partial index of
    unfinished deliveries (``delivery_due``), for /metrics."""
    rows = (
        Delivery.objects.filter(status__in=[Delivery.Status.PENDING, Delivery.Status.SENDING])
        .values_list("transport", "status")
        .annotate(count=Count("pk"))
        .order_by()
    )
    return [(transport, status, count) for transport, status, count in rows]
