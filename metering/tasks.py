"""Metering's maintenance tasks, run by beat (``CELERY_BEAT_SCHEDULE``)."""

from __future__ import annotations

from celery import shared_task

from metering.services.ingest import usage_event_keys_prune
from metering.services.partitions import partitions_archive, partitions_ensure_ahead


@shared_task(name="metering.partitions_maintain")
def partitions_maintain() -> dict[str, list[str]]:
    """Daily: the monthly partitions from last month to three ahead, then retention."""
    return {"created": partitions_ensure_ahead(), "archived": partitions_archive()}


@shared_task(name="metering.prune_event_keys")
def prune_event_keys() -> int:
    """Hourly: forget idempotency keys past the dedupe window."""
    return usage_event_keys_prune()
