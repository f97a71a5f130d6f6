"""Rate limiting per API key: 429 with Retry-After, per key, per second."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from creditguard.api.throttling import clear_local_windows
from creditguard.redis_guard import REDIS_FAILURES, redis_breaker_reset
from tests.conftest import World


@pytest.fixture(autouse=True)
def _fresh_limiter() -> Iterator[None]:
    yield
    redis_breaker_reset()
    clear_local_windows()


@pytest.fixture
def unreachable_redis_url() -> str:
    """A Redis URL on a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_too_many_requests_in_a_second_answer_429_with_retry_after(world: World, settings):
    settings.API_RATE_LIMIT_PER_SECOND = 3
    start = timezone.now().replace(microsecond=250_000)
    with time_machine.travel(start, tick=False):
        statuses = [world.alice_api.get("/api/v1/balances").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = world.alice_api.get("/api/v1/balances")
        assert refused["Content-Type"] == "application/problem+json"
        assert refused["Retry-After"] == "1"
        assert refused.json()["status"] == 429
        # Another key of the same tenant has its own allowance.
        assert world.bob_api.get("/api/v1/balances").status_code == 200
    with time_machine.travel(start + timedelta(seconds=1), tick=False):
        assert world.alice_api.get("/api/v1/balances").status_code == 200


def test_no_limit_when_it_is_zero(world: World, settings):
    settings.API_RATE_LIMIT_PER_SECOND = 0
    with time_machine.travel(timezone.now(), tick=False):
        assert {world.alice_api.get("/api/v1/key").status_code for _ in range(20)} == {200}


def test_a_burst_across_a_second_boundary_is_not_let_through(world: World, settings):
    settings.API_RATE_LIMIT_PER_SECOND = 3
    start = timezone.now().replace(microsecond=900_000)
    with time_machine.travel(start, tick=False):
        assert [world.alice_api.get("/api/v1/key").status_code for _ in range(3)] == [200] * 3
    # A fixed window opened afresh here and let three more through: six in 0.2 s.
    with time_machine.travel(start + timedelta(milliseconds=200), tick=False):
        refused = world.alice_api.get("/api/v1/key")
        assert refused.status_code == 429
        assert refused["Retry-After"] == "1"  # 0.8 s, rounded up
    with time_machine.travel(start + timedelta(milliseconds=1000), tick=False):
        assert world.alice_api.get("/api/v1/key").status_code == 200


def test_the_window_slides_one_request_at_a_time(world: World, settings):
    settings.API_RATE_LIMIT_PER_SECOND = 2
    start = timezone.now()
    for offset_ms, expected in [(0, 200), (400, 200), (800, 429), (1000, 200), (1100, 429)]:
        with time_machine.travel(start + timedelta(milliseconds=offset_ms), tick=False):
            assert world.alice_api.get("/api/v1/key").status_code == expected, offset_ms


def test_without_redis_the_api_answers_and_the_limit_holds_per_process(
    world: World, settings, caplog, unreachable_redis_url
):
    settings.REDIS_URL = unreachable_redis_url
    settings.API_RATE_LIMIT_PER_SECOND = 3
    failures_before = REDIS_FAILURES["rate_limit"]
    with time_machine.travel(timezone.now(), tick=False):
        statuses = [world.alice_api.get("/api/v1/key").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert REDIS_FAILURES["rate_limit"] == failures_before + 1  # then the breaker skips it
    warnings = [r for r in caplog.records if "Redis unavailable for rate_limit" in r.message]
    assert len(warnings) == 1
    assert warnings[0].levelname == "WARNING"
