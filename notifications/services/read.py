"""Read state of the in-app list, per person (the portal's "mark read")."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from notifications.models import NotificationRead
from notifications.selectors import notifications_for_person
from tenants.models import Tenant


@transaction.atomic
def notifications_mark_read(
    *,
    tenant: Tenant,
    user: Any,
    public_ids: Collection[UUID] | None = None,
    now: datetime | None = None,
) -> int:
    """Mark the tenant's listed notifications read for ``user``: those of ``public_ids``
    (ids of other tenants or of covered notifications match nothing), or every unread one
    when None. Returns how many became read. Marking twice, or two requests at once,
    keeps the first ``read_at``: the (user, notification) pair is unique and the insert
    ignores a pair that exists."""
    now = now or timezone.now()
    unread = notifications_for_person(tenant=tenant, user=user, unread_only=True)
    if public_ids is not None:
        unread = unread.filter(public_id__in=list(public_ids))
    created = NotificationRead.objects.bulk_create(
        [
            NotificationRead(notification_id=pk, user=user, read_at=now)
            for pk in unread.values_list("pk", flat=True)
        ],
        ignore_conflicts=True,
    )
    return len(created)
