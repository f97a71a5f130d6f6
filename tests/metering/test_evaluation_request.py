"""Asking for an evaluation never fails the request that asked; an outage is counted as
one, anything else is logged as the bug it is."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import redis
from celery import current_app
from django.core.cache import cache

from creditguard.redis_guard import REDIS_FAILURES, redis_breaker_reset
from metering.services.evaluation_request import (
    EVALUATION_SCHEDULED_KEY,
    evaluation_request_started,
    request_evaluation,
)


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    cache.delete(EVALUATION_SCHEDULED_KEY)
    yield
    redis_breaker_reset()


def fail_with(exc: Exception):
    def send_task(*args, **kwargs):
        raise exc

    return send_task


def test_a_broker_outage_is_counted_as_a_redis_failure(
    db, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(current_app, "send_task", fail_with(redis.ConnectionError("down")))
    before = REDIS_FAILURES["evaluation_request"]
    with django_capture_on_commit_callbacks(execute=True):
        request_evaluation()
    assert REDIS_FAILURES["evaluation_request"] == before + 1
    # No task waits: the next request may send one (the broker back, e.g. after a failover).
    assert cache.get(EVALUATION_SCHEDULED_KEY) is None


def test_any_other_error_is_logged_with_its_traceback_not_taken_for_an_outage(
    db, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    monkeypatch.setattr(current_app, "send_task", fail_with(ValueError("a bug")))
    before = REDIS_FAILURES["evaluation_request"]
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        request_evaluation()
    assert REDIS_FAILURES["evaluation_request"] == before
    assert cache.get(EVALUATION_SCHEDULED_KEY) is None
    [record] = [r for r in caplog.records if "could not ask for an evaluation" in r.message]
    assert record.exc_info and record.exc_info[0] is ValueError


def test_at_most_one_evaluation_waits_until_it_starts(
    db, monkeypatch, settings, django_capture_on_commit_callbacks
):
    """Under load an evaluation may run longer than the coalescing window: the requests
    behind it must not queue one task per window (beat's housekeeping and the heartbeat
    would wait behind them), only one, until that one starts."""
    settings.EVALUATION_COALESCE_SECONDS = 0.05
    sent: list[str] = []
    monkeypatch.setattr(current_app, "send_task", lambda name, **kwargs: sent.append(name))

    def ask() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            request_evaluation()

    ask()
    time.sleep(0.2)  # past the coalescing window: the first task has not started yet
    ask()
    assert sent == ["policies.evaluate_pending"]

    evaluation_request_started()  # the worker picked it up
    ask()
    ask()
    assert sent == ["policies.evaluate_pending"] * 2


def test_the_evaluation_task_frees_the_place_when_it_starts(db):
    from policies.tasks import evaluate_pending_task

    cache.add(EVALUATION_SCHEDULED_KEY, True, timeout=60)
    evaluate_pending_task()
    assert cache.get(EVALUATION_SCHEDULED_KEY) is None
