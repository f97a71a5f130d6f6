"""Asking for an evaluation never fails the request that asked; an outage is counted as
one, anything else is logged as the bug it is."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis
from celery import current_app
from django.core.cache import cache

from creditguard.redis_guard import REDIS_FAILURES, redis_breaker_reset
from metering.services.evaluation_request import EVALUATION_SCHEDULED_KEY, request_evaluation


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


def test_any_other_error_is_logged_with_its_traceback_not_taken_for_an_outage(
    db, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    monkeypatch.setattr(current_app, "send_task", fail_with(ValueError("a bug")))
    before = REDIS_FAILURES["evaluation_request"]
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        request_evaluation()
    assert REDIS_FAILURES["evaluation_request"] == before
    [record] = [r for r in caplog.records if "could not ask for an evaluation" in r.message]
    assert record.exc_info and record.exc_info[0] is ValueError
