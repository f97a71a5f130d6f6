"""Kernel services: the workers' heartbeat."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from creditguard.models import WorkerHeartbeat

# Rows of workers gone this long (replaced containers, renamed hosts) are dropped.
HEARTBEAT_FORGET_AFTER = timedelta(days=1)


def worker_heartbeat_record(*, hostname: str, now: datetime | None = None) -> None:
    """Record that the worker ``hostname`` is alive now. One upsert statement, so
    concurrent heartbeats of the same or other workers neither fail nor wait on each
    other beyond the row; forgets workers not seen for a day."""
    now = now or timezone.now()
    WorkerHeartbeat.objects.bulk_create(
        [WorkerHeartbeat(hostname=hostname[:255], seen_at=now)],
        update_conflicts=True,
        unique_fields=["hostname"],
        update_fields=["seen_at"],
    )
    WorkerHeartbeat.objects.filter(seen_at__lt=now - HEARTBEAT_FORGET_AFTER).delete()
