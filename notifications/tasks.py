"""Celery tasks of notifications: thin adapters over the delivery services."""

from __future__ import annotations

import logging

from celery import shared_task

from notifications.services.deliver import deliveries_due, delivery_attempt

logger = logging.getLogger(__name__)


def enqueue_deliveries(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        try:
            deliver_task.delay(delivery_id)
        except Exception:
            logger.exception("could not enqueue delivery %s", delivery_id)


@shared_task(name="notifications.deliver")
def deliver_task(delivery_id: int) -> str:
    return delivery_attempt(delivery_id=delivery_id)


@shared_task(name="notifications.retry_deliveries")
def retry_deliveries_task() -> int:
    due = deliveries_due()
    enqueue_deliveries(due)
    return len(due)
