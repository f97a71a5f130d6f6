"""Prometheus metrics: every metric CreditGuard exports, and how /metrics is served.

Counters and histograms are incremented where the fact happens (the ingest service, the
authorization decision, notifications and deliveries, the rate limiter, the Redis
breaker, the access middleware, the task signals). Under gunicorn or Celery with
``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client's multiprocess mode keeps each
process's values in a file of that directory and a scrape sums them all; without it
(tests, the demo's runserver) the values live in this process's registry.

Gauges of the system's state — the evaluation lag, deliveries waiting, the Celery queue
depth, Redis degraded — are not kept by any process: they are read when scraped, by
:class:`LiveCollector`, one cheap query each, and a source that fails is left out of the
scrape (Redis down sets ``creditguard_redis_degraded`` to 1) instead of failing it.

docs/OPERATIONS.md ("Metrics and logs") lists every metric with its labels.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from creditguard.client_address import client_address

logger = logging.getLogger(__name__)

PREFIX = "creditguard"
# prometheus_client reads the variable when it is imported; so does this module.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# No *_created series: multiprocess mode has none, and one per series doubles a scrape.
disable_created_metrics()

if MULTIPROCESS:
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    # Files named by host and pid rather than pid alone: web and worker containers that
    # share the directory (a volume) may have the same pids in their own namespaces.
    _host = socket.gethostname()
    values.ValueClass = values.MultiProcessValue(
        process_identifier=lambda: f"{_host}-{os.getpid()}"
    )

HTTP_REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests answered, by resolved route name (not path), method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time from the request's arrival to its response, by route and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EVENTS_INGESTED = Counter(
    f"{PREFIX}_usage_events_ingested",
    "Usage events of recorded batches: accepted (booked) or duplicate (already recorded).",
    ["result"],
)
AUTHORIZATIONS = Counter(
    f"{PREFIX}_authorizations",
    "Authorization decisions made (replays of an idempotency key not counted), by "
    "decision and reason ('none' for an allow without overage).",
    ["decision", "reason"],
)
NOTIFICATIONS = Counter(
    f"{PREFIX}_notifications_created",
    "Notifications created to be sent, by kind (covered and history ones not counted).",
    ["kind"],
)
DELIVERIES = Counter(
    f"{PREFIX}_delivery_attempts",
    "Delivery attempts finished, by transport and the status they left: delivered, "
    "pending (to retry) or failed (given up).",
    ["transport", "status"],
)
RATE_LIMIT_REFUSALS = Counter(
    f"{PREFIX}_rate_limit_refusals",
    "Requests refused by a rate limit (429), by limit: rate_limit (per API key) or "
    "auth_failures (failed authentications per address or key).",
    ["limit"],
)
REDIS_FAILURES = Counter(
    f"{PREFIX}_redis_failures",
    "Failed Redis calls, each opening the process's circuit breaker, by feature.",
    ["feature"],
)
REPLICA_FALLBACKS = Counter(
    f"{PREFIX}_db_replica_fallbacks",
    "Requests of replica routes read from the primary instead, by reason: down (the "
    "replica did not answer), lag (behind more than DATABASE_REPLICA_MAX_LAG_SECONDS) or "
    "error (it failed the request, which was answered again from the primary).",
    ["reason"],
)
TASKS = Counter(
    f"{PREFIX}_celery_tasks",
    "Celery tasks finished, by task name and state (SUCCESS, FAILURE, RETRY, …).",
    ["task", "state"],
)
TASK_DURATION = Histogram(
    f"{PREFIX}_celery_task_duration_seconds",
    "Run time of Celery tasks, by task name.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0),
)

# Gauges read at scrape time (LiveCollector), with their labels.
LIVE_GAUGES = {
    f"{PREFIX}_evaluation_pending_balances": (),
    f"{PREFIX}_evaluation_lag_seconds": (),
    f"{PREFIX}_deliveries_waiting": ("transport", "status"),
    f"{PREFIX}_partition_months_ahead": (),
    f"{PREFIX}_celery_queue_length": ("queue",),
    f"{PREFIX}_redis_degraded": (),
}

# A source of live gauges: returns its metric families, one query, or raises.
LiveSource = Callable[[], Iterable[GaugeMetricFamily]]


def gauge(name: str, documentation: str, value: float | None = None) -> GaugeMetricFamily:
    assert name in LIVE_GAUGES, name
    return GaugeMetricFamily(name, documentation, value=value)


def celery_queue_lengths() -> tuple[list[GaugeMetricFamily], bool]:
    """The length of each Celery queue in Redis (one pipelined LLEN) and whether Redis
    answered. Tasks held back by a countdown sit with a worker, not in the list."""
    from creditguard.redis_guard import redis_available, redis_client

    degraded = not redis_available("metrics")
    if not settings.REDIS_URL or degraded:
        return [], degraded
    from creditguard.celery import app

    queues = sorted({queue.name for queue in app.amqp.queues.values()} or {"celery"})
    try:
        pipe = redis_client().pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        lengths = pipe.execute()
    except Exception as exc:  # noqa: BLE001 - Redis down must not fail the scrape
        from creditguard.redis_guard import redis_failed

        redis_failed("metrics", exc)
        return [], True
    family = GaugeMetricFamily(
        f"{PREFIX}_celery_queue_length", "Tasks waiting in each Celery queue.", labels=["queue"]
    )
    for queue, length in zip(queues, lengths, strict=True):
        family.add_metric([queue], float(length))
    return [family], False


class LiveCollector(Collector):
    """The gauges read at scrape time: Celery's queues and Redis's state here, the
    sources of the layers above (the evaluation lag, deliveries waiting) given by the
    view. A source that fails is logged and left out."""

    def __init__(self, sources: Iterable[LiveSource]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for source in self.sources:
            try:
                yield from source()
            except Exception:
                logger.exception("metrics source %s failed", getattr(source, "__name__", source))
        families, degraded = celery_queue_lengths()
        yield from families
        yield gauge(
            f"{PREFIX}_redis_degraded",
            "1 while Redis fails (the scrape's call, or this process's breaker is open); "
            "the API goes on without it.",
            1.0 if degraded else 0.0,
        )


class _Default(Collector):
    def collect(self) -> Iterator[object]:  # type: ignore[override]
        yield from REGISTRY.collect()


def exposition(sources: Iterable[LiveSource]) -> bytes:
    """The text of a scrape: every process's counters and histograms, and the live
    gauges."""
    registry = CollectorRegistry(auto_describe=False)
    # The live gauges first: a Redis failure of this scrape is in its own counters.
    registry.register(LiveCollector(sources))
    if MULTIPROCESS:
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Default())
    return generate_latest(registry)


def metrics_response(request: HttpRequest, sources: Iterable[LiveSource]) -> HttpResponse:
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(exposition(sources), content_type=CONTENT_TYPE_LATEST)


def metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the request may read /metrics. Every configured condition must hold:
    the client's address (creditguard.client_address) in ``METRICS_ALLOWED_NETWORKS``,
    and ``Authorization: Bearer <METRICS_TOKEN>``. An address outside the networks, or
    no condition configured at all, answers 404 — the endpoint does not exist for it; a
    missing or wrong token answers 401, so that a scraper's operator sees what to fix."""
    networks = _networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    token = settings.METRICS_TOKEN
    if not networks and not token:
        return HttpResponse(status=404)
    if networks:
        try:
            address = ipaddress.ip_address(client_address(request))
        except ValueError:
            return HttpResponse(status=404)
        if not any(address.version == net.version and address in net for net in networks):
            return HttpResponse(status=404)
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            response = HttpResponse(status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return None


@lru_cache(maxsize=4)
def _networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def registered_names() -> set[str]:
    """Every metric name a scrape can show (as queried: counters with ``_total``,
    histograms with ``_bucket``, ``_sum`` and ``_count``), for the dashboard's test."""
    names = set(LIVE_GAUGES)
    for metric in (HTTP_REQUESTS, EVENTS_INGESTED, AUTHORIZATIONS, NOTIFICATIONS, DELIVERIES,
                   RATE_LIMIT_REFUSALS, REDIS_FAILURES, REPLICA_FALLBACKS, TASKS):  # fmt: skip
        names.add(f"{metric._name}_total")
    for histogram in (HTTP_DURATION, TASK_DURATION):
        names.update(f"{histogram._name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
    return names
