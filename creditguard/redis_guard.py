"""Redis speeds the API up; it is not a dependency of it. What every Redis client of the
web process shares:

* one client per process (:func:`redis_client`), of ``REDIS_URL`` or, with
  ``REDIS_SENTINELS``, of the master the sentinels name — the cache borrows its pool
  (:class:`SentinelMasterPool`); Celery's broker follows the same sentinels through
  kombu's own transport (``creditguard/settings_redis.py``);
* short timeouts (``REDIS_TIMEOUT_SECONDS``, connect and socket) — redis-py waits for
  ever by default, and a paused Redis accepts connections and never answers;
* a per-process circuit breaker: after a failure, callers skip Redis for
  ``BREAKER_SECONDS`` instead of each paying the timeout, then one call tries again;
* failure counts per feature in :data:`REDIS_FAILURES` (shown by /healthz, for the metrics to
  export) and a warning per feature at most once every ``WARNING_INTERVAL_SECONDS``,
  not a line per request.

docs/ARCHITECTURE.md ("Without Redis") says what each feature does meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from functools import cache as memoize

import redis
from django.conf import settings
from redis.connection import parse_url
from redis.sentinel import Sentinel

from creditguard.metrics import REDIS_FAILURES as REDIS_FAILURES_METRIC

logger = logging.getLogger(__name__)

BREAKER_SECONDS = 5.0
WARNING_INTERVAL_SECONDS = 60.0

# Redis failures seen by this process, by feature ("rate_limit", "auth_failures",
# "evaluation_request", …), and calls skipped while the breaker was open.
REDIS_FAILURES: Counter[str] = Counter()
REDIS_SKIPPED: Counter[str] = Counter()

_lock = threading.Lock()
_open_until = 0.0
_last_warning: dict[str, float] = {}
_unwarned: Counter[str] = Counter()


def redis_client() -> redis.Redis:
    """The process's client of ``REDIS_URL`` — or, with ``REDIS_SENTINELS``, of the master
    the sentinels name, asked again on each new connection, so that after a failover the
    next connection reaches the promoted replica — with the short timeouts (towards the
    sentinels too)."""
    return _client(
        settings.REDIS_URL,
        settings.REDIS_TIMEOUT_SECONDS,
        tuple(settings.REDIS_SENTINELS),
        settings.REDIS_SENTINEL_MASTER,
    )


@memoize
def _client(
    url: str, timeout: float, sentinels: tuple[tuple[str, int], ...], master: str
) -> redis.Redis:
    if not sentinels:
        return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    # The database and the master's credentials from REDIS_URL, whose host is not dialled
    # (creditguard/settings_redis.py).
    credentials = {
        key: value for key, value in parse_url(url).items() if key in {"db", "username", "password"}
    }
    sentinel = Sentinel(list(sentinels), socket_connect_timeout=timeout, socket_timeout=timeout)
    return sentinel.master_for(master, **credentials)


class SentinelMasterPool:
    """The ``pool_class`` of Django's RedisCache with Sentinel: the cache builds its pool
    with ``pool_class.from_url(LOCATION, **OPTIONS)``; this hands it the pool of
    :func:`redis_client` instead, so the cache follows the same master through the same
    sentinels, with the same timeouts, rather than dial REDIS_URL's host."""

    @classmethod
    def from_url(cls, url: str, **options: object) -> redis.ConnectionPool:
        return redis_client().connection_pool


def redis_available(feature: str) -> bool:
    """False while the breaker is open (a failure less than BREAKER_SECONDS ago): the
    caller takes its fallback without touching Redis."""
    if time.monotonic() >= _open_until:
        return True
    REDIS_SKIPPED[feature] += 1
    return False


def redis_failed(feature: str, exc: BaseException) -> None:
    """Record a failed Redis call of ``feature`` and open the breaker."""
    global _open_until
    now = time.monotonic()
    REDIS_FAILURES_METRIC.labels(feature=feature).inc()
    with _lock:
        REDIS_FAILURES[feature] += 1
        _open_until = now + BREAKER_SECONDS
        _unwarned[feature] += 1
        if now - _last_warning.get(feature, -WARNING_INTERVAL_SECONDS) < WARNING_INTERVAL_SECONDS:
            return
        _last_warning[feature] = now
        failures, _unwarned[feature] = _unwarned[feature], 0
    logger.warning(
        "Redis unavailable for %s (%s: %s); %d failure(s) since the last warning, "
        "going on without it",
        feature,
        exc.__class__.__name__,
        exc,
        failures,
    )


def redis_breaker_reset() -> None:
    """Close the breaker and forget the warnings (tests, and a Redis known to be back)."""
    global _open_until
    with _lock:
        _open_until = 0.0
        _last_warning.clear()
        _unwarned.clear()
