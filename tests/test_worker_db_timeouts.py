"""Worker sessions on PostgreSQL give up waiting on locks, and end when their worker dies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest
from django.core.cache import cache
from django.db import OperationalError, connection, connections
from psycopg2 import errorcodes

from creditguard.celery import WORKER_APPLICATION_NAME, app, worker_session_limit
from metering.models import Balance
from metering.services.evaluation_request import EVALUATION_SCHEDULED_KEY
from policies.tasks import evaluate_pending_task
from tenants.models import Tenant
from tests.factories import TenantFactory
from tests.workers import Worker, wait_for, worker_environment

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def dsn() -> str:
    db = connection.settings_dict
    return (
        f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


@contextmanager
def lock_held(sql: str) -> Iterator[None]:
    """Another session holds a lock (taken by ``sql``) until the block ends."""
    holder = psycopg2.connect(dsn())
    try:
        with holder.cursor() as cursor:
            cursor.execute(sql)
        yield
    finally:
        holder.rollback()
        holder.close()


def worker_sessions(*, waiting_on_a_lock: bool = False) -> list[int]:
    query = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s"
    if waiting_on_a_lock:
        query += " AND wait_event_type = 'Lock'"
    with connection.cursor() as cursor:
        cursor.execute(query, [connection.settings_dict["NAME"], WORKER_APPLICATION_NAME])
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def worker_session():
    session = connections.create_connection("default")
    worker_session_limit(session)
    yield session
    session.close()


def test_a_worker_session_carries_every_limit(worker_session, settings):
    with worker_session.cursor() as cursor:
        shown = {}
        for name in [
            "lock_timeout",
            "statement_timeout",
            "idle_in_transaction_session_timeout",
            "client_connection_check_interval",
            "application_name",
        ]:
            cursor.execute(f"SHOW {name}")
            shown[name] = cursor.fetchone()[0]
    assert shown == {
        "lock_timeout": "5s",
        "statement_timeout": "2min",
        "idle_in_transaction_session_timeout": "1min",
        "client_connection_check_interval": "2s",
        "application_name": WORKER_APPLICATION_NAME,
    }


def test_a_worker_session_gives_up_waiting_for_a_lock_within_the_lock_timeout(settings):
    settings.WORKER_DB_LOCK_TIMEOUT_SECONDS = 0.5
    tenant = TenantFactory.create()
    session = connections.create_connection("default")
    worker_session_limit(session)
    table = Tenant._meta.db_table
    try:
        with lock_held(f"SELECT id FROM {table} WHERE id = {tenant.pk} FOR UPDATE"):
            started = time.monotonic()
            with pytest.raises(OperationalError) as raised, session.cursor() as cursor:
                cursor.execute(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE", [tenant.pk])
            waited = time.monotonic() - started
    finally:
        session.close()
    assert raised.value.__cause__.pgcode == errorcodes.LOCK_NOT_AVAILABLE
    assert 0.4 < waited < 2.0


def test_the_web_s_sessions_carry_no_worker_limits():
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"


# --- in a real worker process ------------------------------------------------------


@pytest.fixture
def start_worker(tmp_path, settings, broker):
    app.control.purge()
    cache.delete(EVALUATION_SCHEDULED_KEY)
    started: list[Worker] = []

    def start(**env: str) -> Worker:
        worker = Worker(worker_environment(redis_url=broker.url, mail_dir=tmp_path / "mail", **env))
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
        print("".join(worker.log))  # shown by pytest when the test failed


BALANCES_LOCKED = f"LOCK TABLE {Balance._meta.db_table} IN ACCESS EXCLUSIVE MODE"


def test_a_worker_task_waiting_on_a_held_lock_gives_up_after_the_lock_timeout(start_worker):
    worker = start_worker(WORKER_DB_LOCK_TIMEOUT_SECONDS="1")
    with lock_held(BALANCES_LOCKED):
        evaluate_pending_task.delay()
        wait_for(lambda: worker.logged("policies.evaluate_pending"), what="the task to arrive")
        started = time.monotonic()
        wait_for(lambda: worker.logged("lock timeout"), timeout=10, what="the lock timeout")
        assert time.monotonic() - started < 5
        # The lock is still held; the worker's session no longer waits for it.
        assert worker_sessions(waiting_on_a_lock=True) == []
    assert worker.process.poll() is None


def test_a_killed_worker_s_session_waiting_on_a_lock_ends_within_seconds(start_worker):
    # A long lock timeout: what ends the session here is PostgreSQL noticing its client
    # is gone, not the timeout.
    worker = start_worker(WORKER_DB_LOCK_TIMEOUT_SECONDS="60")
    with lock_held(BALANCES_LOCKED):
        evaluate_pending_task.delay()
        wait_for(
            lambda: worker_sessions(waiting_on_a_lock=True),
            timeout=15,
            what="the worker's session to wait on the lock",
        )
        worker.kill()
        killed = time.monotonic()
        wait_for(lambda: not worker_sessions(), timeout=10, what="the session to end")
        assert time.monotonic() - killed < 5
