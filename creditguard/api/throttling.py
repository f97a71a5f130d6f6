"""Rate limiting per API key: a fixed one-second window counted in the cache (Redis in
production, shared by every web process), one round trip per request."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
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
        count = _count(f"creditguard:rate:{api_key.prefix}:{window}")
        if count <= limit:
            return True
        self.wait_seconds = window + 1 - now
        return False

    def wait(self) -> float | None:
        return self.wait_seconds


def _count(key: str) -> int:
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        # INCR and EXPIRE in one round trip.
        client = backend._cache.get_client(key, write=True)  # type: ignore[attr-defined]
        pipeline = client.pipeline()
        pipeline.incr(key)
        pipeline.expire(key, 2)
        return int(pipeline.execute()[0])
    backend.add(key, 0, timeout=2)
    return int(backend.incr(key))
