"""Celery tasks of the rules engine: thin adapters over the services of the same name.

Services import ``request_evaluation`` from here, so the tasks import their services
when they run, not at module level.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from creditguard.redis_guard import redis_available, redis_failed

logger = logging.getLogger(__name__)

EVALUATION_SCHEDULED_KEY = "creditguard:evaluation-scheduled"
# One retry (a pooled broker connection may have died with an earlier Redis), no more: the
# request that asked waits for it, and a lost request costs only until evaluate_pending.
EVALUATION_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.1,
    "interval_max": 0.1,
}


def request_evaluation() -> None:
    """Ask for an evaluation of the balances that moved, after the current transaction
    commits. Coalesced: within EVALUATION_COALESCE_SECONDS at most one task is sent,
    and it evaluates every balance that moved by then (a balance stays marked until
    evaluated, so nothing is lost; the sweep is the safety net)."""

    def send() -> None:
        # While Redis fails, the request is not sent at all rather than wait for its
        # timeouts: the balance stays marked (version > evaluated_version), and beat's
        # evaluate_pending finds it once Redis is back.
        if settings.REDIS_URL and not redis_available("evaluation_request"):
            return
        delay = settings.EVALUATION_COALESCE_SECONDS
        try:
            if cache.add(EVALUATION_SCHEDULED_KEY, True, timeout=delay):
                evaluate_pending_task.apply_async(
                    countdown=delay, retry_policy=EVALUATION_PUBLISH_RETRY_POLICY
                )
        except Exception as exc:  # noqa: BLE001 - the caller's commit stands; beat catches up
            redis_failed("evaluation_request", exc)

    transaction.on_commit(send)


@shared_task(name="policies.evaluate_pending")
def evaluate_pending_task() -> int:
    from policies.services.evaluate import evaluate_pending

    return evaluate_pending().notifications


@shared_task(name="policies.evaluate_sweep")
def evaluate_sweep_task() -> int:
    from policies.services.evaluate import evaluate_sweep

    return evaluate_sweep().notifications


@shared_task(name="policies.expire_authorizations")
def expire_authorizations_task() -> int:
    from policies.services.authorize import authorizations_expire

    return authorizations_expire()


@shared_task(name="policies.expire_restrictions")
def expire_restrictions_task() -> int:
    from policies.services.restrictions import restrictions_expire

    return restrictions_expire()


@shared_task(name="metering.close_periods")
def close_periods_task() -> int:
    from metering.services.close import periods_close_due

    return periods_close_due()


@shared_task(name="policies.compute_recommendations")
def compute_recommendations_task() -> int:
    from policies.services.recommend import recommendations_compute

    return len(recommendations_compute())


@shared_task(name="metering.expire_grants")
def expire_grants_task() -> int:
    from metering.services.ledger import grants_expire_due

    return grants_expire_due()
