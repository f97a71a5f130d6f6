"""Site-level views: the landing page, the health check and the readiness check."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, F, Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from creditguard.models import WorkerHeartbeat
from creditguard.redis_guard import REDIS_FAILURES, REDIS_SKIPPED, redis_client
from metering.models import Balance, Channel


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
