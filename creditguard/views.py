"""Site-level views: the landing page, the health check, the readiness check and the
Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, F, Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from creditguard.metrics import PREFIX, gauge, metrics_response
from creditguard.models import WorkerHeartbeat
from creditguard.redis_guard import REDIS_FAILURES, REDIS_SKIPPED, redis_client
from metering.models import Balance, Channel
from metering.services.partitions import partitions_months_ahead
from notifications.selectors import deliveries_waiting


def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "home.html",
        # Public: nothing about the customers or the infrastructure.
        {"channels": Channel.objects.all()},
    )


def healthz(request: HttpRequest) -> JsonResponse:
    """200 "ok" when the database and Redis answer; 200 "degraded" when only Redis does
    not — the API still serves (docs/ARCHITECTURE.md, "Without Redis"); 503
    "unavailable" when the database does not. ``redis_failures`` counts, per feature, the
    Redis calls of this process that failed and those skipped while its breaker was open."""
    status, checks = _health_checks()
    return JsonResponse(
        {"status": status, "checks": checks}, status=503 if status == "unavailable" else 200
    )


def _health_checks() -> tuple[str, dict[str, Any]]:
    checks: dict[str, Any] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        checks["database"] = f"error: {exc.__class__.__name__}"
    if settings.REDIS_URL:
        try:
            redis_client().ping()  # with the short timeouts, bypassing the breaker
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = f"error: {exc.__class__.__name__}"
        checks["redis_failures"] = {
            "failed": dict(REDIS_FAILURES),
            "skipped_while_open": dict(REDIS_SKIPPED),
        }
    else:
        checks["redis"] = "not configured (embedded default)"
    if checks["database"].startswith("error"):
        return "unavailable", checks
    if checks["redis"].startswith("error"):
        return "degraded", checks
    return "ok", checks


def readyz(request: HttpRequest) -> JsonResponse:
    """Whether the system does its work, beyond answering (/healthz): the database and
    Redis as /healthz reports them, every migration applied, a worker heartbeat younger
    than READYZ_HEARTBEAT_MAX_AGE_SECONDS (beat, the broker and a worker all work), and
    the evaluation lag. 503 when /healthz is unhealthy, a migration is pending or the
    heartbeat is stale or missing; the lag is reported, not judged."""
    status, checks = _health_checks()
    ready = status != "unavailable"
    if ready:
        checks["migrations"] = _migrations_check()
        checks["worker"] = _worker_check()
        checks["evaluation"] = _evaluation_lag()
        ready = checks["migrations"] == "ok" and checks["worker"]["status"] == "ok"
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


_migrations_applied = False


def _migrations_check() -> str:
    """Loading the migration graph costs ~20 ms, so once every migration this process
    knows is applied, later probes take that as settled (new migrations come with new
    code, hence a new process)."""
    global _migrations_applied
    if _migrations_applied:
        return "ok"
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    _migrations_applied = not pending
    return "ok" if not pending else f"{len(pending)} pending"


def _worker_check() -> dict[str, Any]:
    newest = WorkerHeartbeat.objects.order_by("-seen_at").values_list("seen_at", flat=True)
    seen_at = newest.first()
    if seen_at is None:
        return {"status": "no heartbeat", "heartbeat_age_seconds": None}
    age = (timezone.now() - seen_at).total_seconds()
    stale = age > settings.READYZ_HEARTBEAT_MAX_AGE_SECONDS
    return {"status": "stale" if stale else "ok", "heartbeat_age_seconds": round(age, 1)}


def _evaluation_lag() -> dict[str, Any]:
    """Balances that moved since their last evaluation, and how long ago the oldest of
    them last moved (its updated_at: a lower bound of how long it has waited)."""
    waiting = Balance.objects.filter(version__gt=F("evaluated_version")).aggregate(
        count=Count("id"), oldest=Min("updated_at")
    )
    oldest = waiting["oldest"]
    return {
        "pending_balances": waiting["count"],
        "oldest_pending_seconds": (
            round((timezone.now() - oldest).total_seconds(), 1) if oldest else None
        ),
    }


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus's scrape (creditguard/metrics.py): refused with 404 or 401 unless the
    METRICS_* settings allow the client."""
    return metrics_response(request, [_evaluation_gauges, _delivery_gauges, _partition_gauges])


def _evaluation_gauges() -> Iterator[GaugeMetricFamily]:
    lag = _evaluation_lag()
    yield gauge(
        f"{PREFIX}_evaluation_pending_balances",
        "Balances that moved since their last evaluation.",
        lag["pending_balances"],
    )
    yield gauge(
        f"{PREFIX}_evaluation_lag_seconds",
        "How long ago the oldest balance waiting for evaluation moved (0 when none waits).",
        lag["oldest_pending_seconds"] or 0.0,
    )


def _delivery_gauges() -> Iterator[GaugeMetricFamily]:
    family = GaugeMetricFamily(
        f"{PREFIX}_deliveries_waiting",
        "Deliveries not finished yet, by transport and status (pending or sending).",
        labels=["transport", "status"],
    )
    counts = {(transport, status): count for transport, status, count in deliveries_waiting()}
    for transport in ("email", "webhook"):
        for status in ("pending", "sending"):
            family.add_metric([transport, status], counts.get((transport, status), 0))
    yield family


def _partition_gauges() -> Iterator[GaugeMetricFamily]:
    if connection.vendor == "postgresql":  # SQLite keeps plain tables
        yield gauge(
            f"{PREFIX}_partition_months_ahead",
            "Whole months after this one with their usage-event and ledger partitions "
            "(beat keeps 3; below 1, next month's rows land in the default partition).",
            partitions_months_ahead(),
        )
