"""Rate limiting: sliding windows counted in Redis, shared by every web process.

A window holds the instants of the requests it admitted in the last ``window`` seconds
(a sorted set per key); a request is admitted while fewer than ``limit`` remain. Unlike
a fixed window, no interval of ``window`` seconds ever admits more than ``limit`` — a
fixed one-second window let twice the limit through across its boundary. One Lua script
(EVALSHA) prunes, counts and adds, so a request costs one Redis round trip; memory is one
entry per admitted request of the last window.

Without Redis — the embedded default, or while Redis fails (``creditguard.redis_guard``)
— the same windows are kept in this process's memory: the limit then holds per process,
not per key across processes (see docs/ARCHITECTURE.md, "Without Redis").
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from functools import cache as memoize
from typing import Any

import redis
from django.conf import settings

from creditguard.metrics import RATE_LIMIT_REFUSALS
from creditguard.redis_guard import redis_available, redis_client, redis_failed

# KEYS: the windows; ARGV: now (ms), window (ms), limit, a member unique to this request.
# Returns 0 when every window had room (the request is counted in each), else the
# milliseconds until the fullest one has room (nothing is counted).
_SLIDING_WINDOW_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local wait = 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now)
  end
end
if wait > 0 then
  return math.ceil(wait)
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, window)
end
return 0
"""


def limit_hit(keys: list[str], *, limit: int, window: float, feature: str) -> float | None:
    """Count one event against the sliding window of each key. None: admitted (counted
    in every window); else the seconds until the fullest window has room (not counted;
    a refusal counts in ``creditguard_rate_limit_refusals_total`` by ``feature``).
    Redis failing never fails the caller: the process's own windows answer instead."""
    wait = _limit_hit(keys, limit=limit, window=window, feature=feature)
    if wait is not None:
        RATE_LIMIT_REFUSALS.labels(limit=feature).inc()
    return wait


def _limit_hit(keys: list[str], *, limit: int, window: float, feature: str) -> float | None:
    now = time.time()
    if settings.REDIS_URL and redis_available(feature):
        try:
            wait_ms = _sliding_window(
                keys=keys,
                args=[round(now * 1000, 3), round(window * 1000), limit, _member(now)],
            )
        except redis.RedisError as exc:
            redis_failed(feature, exc)
        else:
            return int(wait_ms) / 1000 or None
    return _local.hit(keys, limit=limit, window=window, now=now)


def _sliding_window(*, keys: list[str], args: list[Any]) -> Any:
    # EVALSHA; redis-py falls back to EVAL once if the server has not seen the script.
    return _script(redis_client())(keys=keys, args=args)


@memoize
def _script(client: redis.Redis) -> Any:
    return client.register_script(_SLIDING_WINDOW_LUA)


_sequence = itertools.count()


def _member(now: float) -> str:
    return f"{now:.6f}:{os.getpid()}:{threading.get_ident()}:{next(_sequence)}"


class _LocalWindows:
    """The same sliding windows in this process's memory."""

    PRUNE_EVERY = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> (its window's length, the instants it admitted)
        self._windows: dict[str, tuple[float, deque[float]]] = {}
        self._calls = 0

    def hit(self, keys: list[str], *, limit: int, window: float, now: float) -> float | None:
        with self._lock:
            self._calls += 1
            if self._calls % self.PRUNE_EVERY == 0:
                # Forget the keys that admitted nothing within their window.
                self._windows = {
                    key: (length, hits)
                    for key, (length, hits) in self._windows.items()
                    if hits and hits[-1] > now - length
                }
            wait = 0.0
            for key in keys:
                hits = self._windows.setdefault(key, (window, deque()))[1]
                while hits and hits[0] <= now - window:
                    hits.popleft()
                if len(hits) >= limit:
                    wait = max(wait, hits[0] + window - now)
            if wait > 0:
                return wait
            for key in keys:
                self._windows[key][1].append(now)
            return None

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()


_local = _LocalWindows()


def clear_local_windows() -> None:
    """Forget this process's windows (tests)."""
    _local.clear()
