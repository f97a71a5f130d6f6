"""Metering's maintenance tasks, run by beat (``CELERY_BEAT_SCHEDULE``)."""

from __future__ import annotations

import logging

from celery import shared_task

from metering.services.ingest import usage_event_keys_prune
from metering.services.partitions import (
    PartitionsBusy,
    partitions_archive,
    partitions_ensure_ahead,
)

logger = logging.getLogger(__name__)


@shared_task(name="metering.partitions_maintain")
def partitions_maintain() -> dict[str, list[str]]:
    """Daily: the monthly partitions from last month to three ahead, then retention. A
    step that gives up on a table lock (``PartitionsBusy``, nothing changed) is logged
    and left to the next day's run, which has three months of partitions ahead to spare."""
    done: dict[str, list[str]] = {"created": [], "archived": []}
    for step, work in (("created", partitions_ensure_ahead), ("archived", partitions_archive)):
        try:
            done[step] = work()
        except PartitionsBusy as exc:
            logger.warning("partitions_maintain: %s left for the next run: %s", step, exc)
    return done


@shared_task(name="metering.prune_event_keys")
def prune_event_keys() -> int:
    """Hourly: forget idempotency keys past the dedupe window."""
    return usage_event_keys_prune()
