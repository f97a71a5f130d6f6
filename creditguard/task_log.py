"""Celery's side of the logs and metrics: the request id travels with a task, and every
task writes one line when it ends.

* ``before_task_publish``: a task sent while serving a request (or running a task)
  carries the current request id in its headers (``creditguard_request_id``).
* ``task_prerun``: the task's lines carry that id, or the task's own id when it has
  none (beat's tasks), which then travels on with the tasks it sends.
* ``task_postrun``: one line per task (name, id, state, duration, request id) and the
  task counters of ``creditguard.metrics``.
* ``setup_logging``: workers log by the LOGGING setting (JSON or plain), as the web does.
* ``worker_init``: with ``CELERY_METRICS_PORT`` set, the worker serves its own metrics
  (its tasks, deliveries and notifications) at ``http://<worker>:<port>/metrics`` for
  Prometheus to scrape on the internal network; with the prefork pool its processes
  share ``PROMETHEUS_MULTIPROC_DIR``, which must then be set (docs/OPERATIONS.md).
* ``worker_process_shutdown``: a pool process that ends is marked dead for
  prometheus_client's multiprocess mode.

Loaded with the Celery app (``creditguard.celery``), hence before Django is set up:
Django and the metrics are imported inside the handlers.
"""

from __future__ import annotations

import logging
import os
import time
from contextvars import Token
from typing import Any

from celery.signals import (
    before_task_publish,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
)

from creditguard.logs import request_id_var

logger = logging.getLogger("creditguard.tasks")

HEADER = "creditguard_request_id"

# task id -> (the context token to restore, when it started)
_running: dict[str, tuple[Token[str | None], float]] = {}


@before_task_publish.connect
def _carry_request_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = request_id_var.get()
    if request_id and headers is not None and HEADER not in headers:
        headers[HEADER] = request_id


def _request_id_of(task: Any, task_id: str) -> str:
    request = getattr(task, "request", None)
    value = getattr(request, HEADER, None)
    if not value:
        value = (getattr(request, "headers", None) or {}).get(HEADER)
    return str(value) if value else task_id


@task_prerun.connect
def _task_started(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    if task_id is None:
        return
    token = request_id_var.set(_request_id_of(task, task_id))
    _running[task_id] = (token, time.perf_counter())


@task_postrun.connect
def _task_ended(
    task_id: str | None = None, task: Any = None, state: str | None = None, **kwargs: Any
) -> None:
    started = _running.pop(task_id, None) if task_id else None
    if started is None:
        return
    token, began = started
    seconds = time.perf_counter() - began
    name = getattr(task, "name", None) or "unknown"
    state = state or "UNKNOWN"
    try:
        from creditguard.metrics import TASK_DURATION, TASKS

        TASKS.labels(task=name, state=state).inc()
        TASK_DURATION.labels(task=name).observe(seconds)
        duration_ms = round(seconds * 1000, 1)
        logger.info(
            "task %s %s %s %s ms",
            name,
            task_id,
            state,
            duration_ms,
            extra={
                "event": "task",
                "task": name,
                "task_id": task_id,
                "state": state,
                "duration_ms": duration_ms,
            },
        )
    finally:
        try:
            request_id_var.reset(token)
        except ValueError:  # set in another context: forget it all the same
            request_id_var.set(None)


@setup_logging.connect
def _configure_logging(**kwargs: Any) -> None:
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@worker_process_shutdown.connect
def _mark_process_dead(pid: int | None = None, **kwargs: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


@worker_init.connect
def _serve_worker_metrics(**kwargs: Any) -> None:
    port = os.environ.get("CELERY_METRICS_PORT")
    if not port:
        return
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

    from creditguard.metrics import MULTIPROCESS

    registry = REGISTRY
    if MULTIPROCESS:
        registry = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(registry)
    start_http_server(int(port), addr=os.environ.get("CELERY_METRICS_ADDRESS", "0.0.0.0"),  # noqa: S104
                      registry=registry)  # fmt: skip
    logger.info("worker metrics at :%s/metrics", port)
