"""Parallel test workers (pytest-xdist, ``-n`` in scripts/test.sh): each has a Redis
database of its own, which its cache, its Celery producers and the processes it starts all
use (tests/conftest.py, ``_redis_of_this_worker``); the tests that may not run beside
each other share a worker (``XDIST_GROUPS``)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from creditguard.celery import app
from tests.conftest import worker_redis_url, xdist_group, xdist_group_problem


def test_a_worker_takes_the_database_its_number_below_the_given_one():
    assert worker_redis_url("redis://127.0.0.1:6379/15", "gw0") == "redis://127.0.0.1:6379/15"
    assert worker_redis_url("redis://127.0.0.1:6379/15", "gw1") == "redis://127.0.0.1:6379/14"
    assert worker_redis_url("redis://:secret@cache:6380/3", "gw3") == "redis://:secret@cache:6380/0"
    with pytest.raises(pytest.UsageError, match="gw2 has no Redis database"):
        worker_redis_url("redis://127.0.0.1:6379/1", "gw2")


def test_the_cache_the_broker_and_child_processes_use_this_workers_redis():
    url = settings.REDIS_URL
    assert os.environ["REDIS_URL"] == url  # what subprocesses inherit
    assert app.conf.broker_url == url
    pool: Any = app.pool  # the producers' connections (celery-types says otherwise)
    with pool.acquire(block=True) as connection:
        assert connection.as_uri(include_password=True) == url
    key = f"parallel-{uuid.uuid4().hex}"
    cache.set(key, 7, 60)
    try:
        assert redis.Redis.from_url(url).get(cache.make_and_validate_key(key)) == b"7"
    finally:
        cache.delete(key)


def test_the_tests_in_chromium_and_the_32_threads_each_share_one_worker():
    assert xdist_group("tests/admin/test_browser_whatif.py::test_x") == "chromium"
    assert xdist_group("tests/portal/test_browser.py::test_x[de]") == "chromium"
    assert xdist_group("tests/test_api_docs.py::test_swagger_ui_renders_x") == "chromium"
    assert xdist_group("tests/test_api_docs.py::test_the_docs_page_x") is None
    assert xdist_group("tests/policies/test_concurrency.py::test_x") == "32_threads"
    assert xdist_group("tests/policies/test_concurrency_notes.py::test_x") is None
    assert xdist_group("tests/test_request_bodies.py::test_x_under_gunicorn") == "gunicorn_bodies"
    assert xdist_group("tests/admin/test_start_page.py::test_x") is None


def test_every_grouped_test_here_is_transactional_and_every_browser_test_in_chromium(request):
    """What the collection checks (``xdist_group_problem``), on this session's tests and on
    tests/test_api_docs.py's, whose browser test is grouped and whose others are not."""
    items = list(request.session.items)
    docs = [item for item in items if item.nodeid.startswith("tests/test_api_docs.py::")]
    assert all(xdist_group_problem(item) is None for item in items)
    for item in docs:  # when collected with this module
        in_chromium = "browser" in item.fixturenames
        assert xdist_group(item.nodeid) == ("chromium" if in_chromium else None)


def test_a_plain_database_test_in_a_group_is_refused():
    class PlainTestUnderAGroupedName:
        nodeid = "tests/policies/test_concurrency.py::test_plain"
        fixturenames = ["db"]

        @staticmethod
        def get_closest_marker(name):
            return pytest.mark.django_db.mark if name == "django_db" else None

    assert xdist_group_problem(PlainTestUnderAGroupedName()) == (  # type: ignore[arg-type]
        "is in the group '32_threads' but not a transactional test"
    )
