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
    commits. Coalesced: at most one task waits at a time — sent with a countdown of
    EVALUATION_COALESCE_SECONDS, it evaluates every balance that moved by the time it
    runs, and no other is sent until it starts (:func:`evaluation_request_started`).
    Under load the queue thus holds one evaluation, not one per second that beat's
    housekeeping and the heartbeat would wait behind. A task lost before it started holds
    the mark for EVALUATION_SCHEDULED_TTL_SECONDS at most, and beat's evaluate_pending
    (every 15 s) clears it too; a balance stays marked until evaluated, so nothing is lost."""

    def send() -> None:
        # While Redis fails, the request is not sent at all rather than wait for its
        # timeouts: the balance stays marked (version > evaluated_version), and beat's
        # evaluate_pending finds it once Redis is back.
        if settings.REDIS_URL and not redis_available("evaluation_request"):
            return
        delay = settings.EVALUATION_COALESCE_SECONDS
        try:
            if cache.add(
                EVALUATION_SCHEDULED_KEY, True, timeout=settings.EVALUATION_SCHEDULED_TTL_SECONDS
            ):
                try:
                    current_app.send_task(
                        EVALUATE_PENDING_TASK,
                        countdown=delay,
                        retry_policy=EVALUATION_PUBLISH_RETRY_POLICY,
                    )
                except BaseException:
                    # Nothing waits in the queue: free the place, or the next requests
                    # would send nothing until the mark expired.
                    evaluation_request_started()
                    raise
        except (redis.RedisError, kombu.exceptions.OperationalError) as exc:
            redis_failed("evaluation_request", exc)  # the caller's commit stands
        except Exception:
            # Not an outage: a bug to see with its traceback. The commit stands all the
            # same, and beat's evaluate_pending catches up.
            logger.exception("could not ask for an evaluation")

    transaction.on_commit(send)


def evaluation_request_started() -> None:
    """An evaluation task has started: it reads the balances marked by now, so a balance
    that moves from here on needs the next one, which :func:`request_evaluation` may send
    again. Never fails the task: while Redis fails, the mark expires on its own."""
    try:
        cache.delete(EVALUATION_SCHEDULED_KEY)
    except redis.RedisError as exc:
        redis_failed("evaluation_request", exc)
