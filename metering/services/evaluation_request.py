"""Asking the workers to evaluate the balances that moved.

A balance that moves is marked (``version > evaluated_version``); the rules engine, a
layer above metering, evaluates it. Metering asks for that evaluation by sending the
task by its name, ``policies.evaluate_pending``, so it never imports policies.
"""

from __future__ import annotations

import logging

import kombu.exceptions
import redis
from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from creditguard.redis_guard import redis_available, redis_failed

logger = logging.getLogger(__name__)

EVALUATE_PENDING_TASK = "policies.evaluate_pending"
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
                current_app.send_task(
                    EVALUATE_PENDING_TASK,
                    countdown=delay,
                    retry_policy=EVALUATION_PUBLISH_RETRY_POLICY,
                )
        except (redis.RedisError, kombu.exceptions.OperationalError) as exc:
            redis_failed("evaluation_request", exc)  # the caller's commit stands
        except Exception:
            # Not an outage: a bug to see with its traceback. The commit stands all the
            # same, and beat's evaluate_pending catches up.
            logger.exception("could not ask for an evaluation")

    transaction.on_commit(send)
