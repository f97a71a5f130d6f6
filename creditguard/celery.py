"""The Celery application. Configured from Django settings (``CELERY_*``).

Worker processes, and only they, put limits on their PostgreSQL sessions
(``worker_session_limit``), and record a heartbeat when they start
(``creditguard.tasks``; beat records one every ``WORKER_HEARTBEAT_SECONDS``), which
``/readyz`` reads.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_ready

# The request id carried by tasks, a log line per task, workers' logging and metrics.
from creditguard import task_log  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "creditguard.settings")

app = Celery("creditguard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

WORKER_APPLICATION_NAME = "creditguard-worker"


def worker_session_limit(connection: Any) -> None:
    """Set a worker's limits on one PostgreSQL session: lock and statement timeouts, an
    idle-in-transaction timeout, the client check that ends the session of a killed
    worker (PostgreSQL 14+), and an application name that tells worker sessions apart
    in ``pg_stat_activity``. Session-level, so they hold for the connection's life."""
    from django.conf import settings  # this module loads with the settings themselves

    if connection.vendor != "postgresql":
        return
    idle_in_transaction = settings.WORKER_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS
    limits = {
        "lock_timeout": settings.WORKER_DB_LOCK_TIMEOUT_SECONDS,
        "statement_timeout": settings.WORKER_DB_STATEMENT_TIMEOUT_SECONDS,
        "idle_in_transaction_session_timeout": idle_in_transaction,
    }
    if connection.pg_version >= 140000:
        limits["client_connection_check_interval"] = settings.WORKER_DB_CLIENT_CHECK_SECONDS
    values = {name: f"{round(seconds * 1000)}ms" for name, seconds in limits.items()}
    values["application_name"] = WORKER_APPLICATION_NAME
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join(["set_config(%s, %s, false)"] * len(values)),
            [part for item in values.items() for part in item],
        )


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    worker_session_limit(connection)


@worker_init.connect
def _limit_worker_sessions(**kwargs: Any) -> None:
    # Connected in the worker's main process before its pool starts, so every pool
    # process (forked) and every later reconnection carries the limits; the web server
    # never runs this. (Django imports here, like the others in this module: it is
    # loaded with the settings, before Django is set up.)
    from django.db import connections
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection_created, dispatch_uid="creditguard-worker-session")
    connections.close_all()


@worker_ready.connect
def _record_start(sender: Any = None, **kwargs: Any) -> None:
    # Imported when the worker is ready, not at the top: this module is loaded with the
    # settings (creditguard/__init__.py), before Django's app registry can load models.
    from django.db import connections

    from creditguard.services import worker_heartbeat_record

    worker_heartbeat_record(hostname=getattr(sender, "hostname", None) or "unknown")
    # The pool's processes must not share this process's connection.
    connections.close_all()
