"""Rate limiting per API key: a fixed one-second window counted in Redis (shared by every
web process) — a single INCR per request, its EXPIRE only when the window opens."""

from __future__ import annotations

import time
from functools import cache as memoize
from typing import Any, cast

import redis
from django.conf import settings
from django.core.cache import caches
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from tenants.models import ApiKey


class ApiKeyRateThrottle(BaseThrottle):
    """At most ``API_RATE_LIMIT_PER_SECOND`` requests per key and second; past it, 429
    with ``Retry-After`` (the problem handler adds the header). 0 turns it off."""

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        limit = settings.API_RATE_LIMIT_PER_SECOND
        api_key = request.auth
        if not limit or not isinstance(api_key, ApiKey):
            return True
        now = time.time()
        window = int(now)
        if _count(f"creditguard:rate:{api_key.prefix}:{window}") <= limit:
            return True
        self.wait_seconds = window + 1 - now
        return False

    def wait(self) -> float | None:
        return self.wait_seconds


@memoize
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1)


def _count(key: str) -> int:
    if settings.REDIS_URL:
        client = _redis(settings.REDIS_URL)
        count = int(cast(int, client.incr(key)))
        if count == 1:
            client.expire(key, 2)
        return count
    # The embedded default (one process, no Redis): the local cache.
    backend = caches["default"]
    backend.add(key, 0, timeout=2)
    return int(backend.incr(key))
