"""Rate limiting per API key: 429 with Retry-After, per key, per second."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from django.utils import timezone

from tests.conftest import World


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
