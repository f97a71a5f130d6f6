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


def worker_session_settings(pg_version: int) -> dict[str, str]:
    """A worker's limits on its PostgreSQL sessions, as parameter → value: lock and
    statement timeouts, an idle-in-transaction timeout, the client check that ends the
    session of a killed worker (PostgreSQL 14+), in milliseconds."""
    from django.conf import settings  # this module loads with the settings themselves

    limits = {
        "lock_timeout": settings.WORKER_DB_LOCK_TIMEOUT_SECONDS,
        "statement_timeout": settings.WORKER_DB_STATEMENT_TIMEOUT_SECONDS,
        "idle_in_transaction_session_timeout": (
            settings.WORKER_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS
        ),
    }
    if pg_version >= 140000:
        limits["client_connection_check_interval"] = settings.WORKER_DB_CLIENT_CHECK_SECONDS
    return {name: str(round(seconds * 1000)) for name, seconds in limits.items()}


def worker_connect_query(pg_version: int) -> str:
    """The limits and the application name as the ``connect_query`` of the workers' own
    PgBouncer database, which the pooler runs on each server session it opens for them
    (behind a transaction pooler, DATABASE_POOLER; docs/SCALING.md)."""
    values = worker_session_settings(pg_version)
    return "; ".join(
        [f"SET {name} = {value}" for name, value in values.items()]
        + [f"SET application_name = '{WORKER_APPLICATION_NAME}'"]
    )


def worker_session_limit(connection: Any) -> None:
    """Set a worker's limits (``worker_session_settings``) on one PostgreSQL session, and
    an application name that tells worker sessions apart in ``pg_stat_activity``.
    Session-level, so they hold for the connection's life.

    Not behind a transaction pooler (``TRANSACTION_POOLING``): there a session-level
    setting holds on whichever server session ran it — for the next client of that
    session, a web request's as well — and not on the others this worker's transactions
    run on. The workers' own pool carries them instead, its ``connect_query``
    (``worker_connect_query``)."""
    from django.conf import settings

    if connection.vendor != "postgresql" or settings.TRANSACTION_POOLING:
        return
    limits = worker_session_settings(connection.pg_version)
    values = {name: f"{ms}ms" for name, ms in limits.items()}
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
