"""The app behind a real PgBouncer in transaction pooling (DATABASE_POOLER=
pgbouncer-transaction; docs/SCALING.md): ingestion, authorizations from 32 threads on a
pool of two server sessions, the billing CSV export and the evaluation task in a real
worker — every statement through the pooler, as its admin console counts."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from typing import Any

import psycopg2
import pytest
import time_machine
from django.core.cache import cache
from django.core.management import call_command
from django.db import ProgrammingError, connection, connections
from django.test import Client
from django.utils import timezone

from creditguard.celery import (
    WORKER_APPLICATION_NAME,
    app,
    worker_session_limit,
)
from metering.models import UsageEvent
from metering.services.evaluation_request import EVALUATION_SCHEDULED_KEY
from notifications.models import Notification
from policies import sql as policies_sql
from policies.models import OverageCharge
from policies.services.authorize import authorization_create
from policies.services.close import periods_close_due
from policies.services.overage import overage_decide
from tenants.services import api_key_create
from tests.billing.test_export import EXPORT, at, november
from tests.conftest import ALL_SCOPES, Api, event, issue
from tests.factories import TenantFactory
from tests.ops import stack
from tests.ops.pgbouncer import PgBouncer, executable, pgbouncer
from tests.policies.helpers import balance_of, set_rule
from tests.policies.test_concurrency import (
    assert_reached_never_passed,
    authorize_from_32_threads,
    run_threads,
    tenant_and_key,
)
from tests.test_settings import manage
from tests.workers import Worker, wait_for, worker_environment

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(
        executable() is None,
        reason="PgBouncer is not installed (scripts/test.sh installs Debian's pgbouncer as root)",
    ),
]

POOL_SIZE = 2


def worker_alias() -> str:
    return f"{connection.settings_dict['NAME']}_worker"


@pytest.fixture
def bouncer(settings) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction pooling with POOL_SIZE server sessions per pool; this
    process's connections (every thread's) go through it as the settings say for
    DATABASE_POOLER=pgbouncer-transaction, and its workers' own database (the alias
    ``<test db>_worker``, as ``manage.py pgbouncer_worker_database`` prints it) runs their
    limits on each server session it opens."""
    db = connection.settings_dict
    printed = io.StringIO()
    call_command(
        "pgbouncer_worker_database", name=worker_alias(), host=db["HOST"] or "127.0.0.1",
        port=int(db["PORT"] or 5432), dbname=db["NAME"], stdout=printed,
    )  # fmt: skip
    databases = [printed.getvalue().strip()]
    with pgbouncer(stack.server_url(), pool_size=POOL_SIZE, databases=databases) as pooler:
        saved = db["HOST"], db["PORT"], db.get("DISABLE_SERVER_SIDE_CURSORS", False)
        connections.close_all()
        # The same dict every thread's new connection is made from.
        db["HOST"], db["PORT"] = "127.0.0.1", str(pooler.port)
        db["DISABLE_SERVER_SIDE_CURSORS"] = True
        settings.DATABASE_POOLER = "pgbouncer-transaction"
        settings.TRANSACTION_POOLING = True
        try:
            yield pooler
        finally:
            connections.close_all()
            db["HOST"], db["PORT"], db["DISABLE_SERVER_SIDE_CURSORS"] = saved
            print(pooler.process.output())  # shown by pytest when the test failed


def pooled(pooler: PgBouncer, database: str | None = None) -> dict[str, Any]:
    """The pool of ``database`` (the test database by default) in ``SHOW POOLS``, with
    its transactions counted by ``SHOW STATS``."""
    name = database or connection.settings_dict["NAME"]
    [pool] = [row for row in pooler.show("POOLS") if row["database"] == name]
    [stats] = [row for row in pooler.show("STATS") if row["database"] == name]
    return {**pool, "transactions": int(stats["total_xact_count"])}


def test_the_setting_switches_off_server_side_cursors():
    shown = "from django.conf import settings as s; d = s.DATABASES['default'];"
    shown += " print(d['DISABLE_SERVER_SIDE_CURSORS'], s.TRANSACTION_POOLING)"
    assert manage("shell", "--no-imports", "-c", shown).stdout.split() == ["False", "False"]
    pooled_run = manage(
        "shell", "--no-imports", "-c", shown, DATABASE_POOLER="pgbouncer-transaction"
    )
    assert pooled_run.stdout.split() == ["True", "True"], pooled_run.stderr
    refused = manage("check", DATABASE_POOLER="pgbouncer-session")
    assert refused.returncode == 3
    assert "DATABASE_POOLER must be empty or pgbouncer-transaction" in refused.stderr


def test_a_statement_prepared_per_connection_meets_another_client_s_session(bouncer, settings):
    """Why the fast path prepares where it executes: with one server session, a second
    client's PREPARE finds the first client's statement there (and on a pool of several,
    an EXECUTE may land where it was never prepared)."""
    tenant = TenantFactory.create(time_zone="UTC")
    set_rule(tenant, "sms", included_units=100)
    authorization_create(tenant=tenant, channel_code="sms", quantity=1)  # opens the balance
    settings.TRANSACTION_POOLING = False  # prepared once per client connection
    failed: list[BaseException] = []

    def another_client() -> None:
        try:
            authorization_create(tenant=tenant, channel_code="sms", quantity=1)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            failed.append(exc)
        finally:
            connection.close()

    with pgbouncer(stack.server_url(), pool_size=1) as single:
        db = connection.settings_dict
        connections.close_all()
        db["PORT"] = str(single.port)
        authorization_create(tenant=tenant, channel_code="sms", quantity=1)
        thread = threading.Thread(target=another_client)
        thread.start()
        thread.join()
        assert len(failed) == 1 and isinstance(failed[0], ProgrammingError)
        assert "creditguard_authorize" in str(failed[0]) and "already exists" in str(failed[0])
        # As the setting has it behind a transaction pooler: prepared where it runs.
        settings.TRANSACTION_POOLING = True
        failed.clear()
        thread = threading.Thread(target=another_client)
        thread.start()
        thread.join()
        assert failed == []
        connections.close_all()
        db["PORT"] = str(bouncer.port)
    assert balance_of(tenant).reserved == 3


def test_32_threads_authorize_on_two_server_sessions_and_never_overspend(bouncer, monkeypatch):
    executed: list[bool] = []
    fast_authorize = policies_sql.fast_authorize

    def counted(values: Any) -> Any:
        try:
            row = fast_authorize(values)
        except Exception:
            # A race the full path then answers (two first requests opening the balance:
            # IntegrityError); still one call of the statement.
            executed.append(False)
            raise
        executed.append(row is not None)
        return row

    monkeypatch.setattr(policies_sql, "fast_authorize", counted)
    tenant, raw_key = tenant_and_key()
    set_rule(tenant, "sms", included_units=100, hard_limit=50)  # ceiling 150
    before = pooled(bouncer)["transactions"]

    answers = authorize_from_32_threads(raw_key)
    assert len(answers) == 256
    assert_reached_never_passed(tenant, answers, ceiling=150)
    # The one statement answered (all but the balance's opening request, which the full
    # path serves), on whichever of the two server sessions each request got.
    assert len(executed) == 256 and executed.count(True) >= 250
    pool = pooled(bouncer)
    assert pool["pool_mode"] == "transaction"
    assert pool["sv_active"] + pool["sv_idle"] + pool["sv_used"] <= POOL_SIZE
    assert pool["transactions"] - before >= 256


def test_ingestion_through_the_pooler_books_every_event_once(bouncer):
    tenant = TenantFactory.create(time_zone="UTC")
    set_rule(tenant, "email", included_units=10**6)
    raw_key = api_key_create(tenant=tenant, name="load", scopes=ALL_SCOPES).raw_key
    occurred_at = timezone.now().isoformat()

    def batch(index: int, number: int) -> list[dict[str, Any]]:
        return [
            event(f"c{index}-b{number}-{n}", channel="email", quantity=2, occurred_at=occurred_at)
            for n in range(100)
        ]

    def work(api: Api, index: int) -> list[int]:
        statuses = [api.ingest(batch(index, number)).status_code for number in range(3)]
        # The first batch again: every event already booked.
        return [*statuses, api.ingest(batch(index, 0)).status_code]

    statuses = run_threads(8, work, raw_key)
    assert {status for batch in statuses for status in batch} == {200}
    assert UsageEvent.objects.filter(tenant=tenant).count() == 8 * 300
    assert balance_of(tenant, "email").used == 8 * 300 * 2
    assert pooled(bouncer)["transactions"] >= 8 * 4


def test_the_billing_csv_export_streams_through_the_pooler(bouncer, monkeypatch):
    monkeypatch.setattr("billing.apis.CHUNK_ROWS", 1)  # several chunks, several writes
    tenants = []
    for n in range(3):
        tenant = TenantFactory.create(slug=f"acme-{n}", name=f"Acme {n}", time_zone="UTC")
        november(tenant)
        tenants.append(tenant)
    with time_machine.travel(at(12, 1, 2), tick=False):
        periods_close_due()
    for tenant in tenants:
        overage_decide(
            charge=OverageCharge.objects.get(tenant=tenant, period__label="2026-11"),
            decision="partly_waive", waived_amount="2.20", reason="goodwill", actor=None,
            now=at(12, 2),
        )  # fmt: skip
    key = issue(None, ["billing:read"]).raw_key
    before = pooled(bouncer)["transactions"]
    response: Any = Client().get(
        EXPORT, {"period": "2026-11", "format": "csv"}, HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 200 and response.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(row["tenant_slug"] for row in rows) == ["acme-0", "acme-1", "acme-2"]
    assert {(row["overage_fee"], row["billed_amount"]) for row in rows} == {("11.20", "9.00")}
    assert sum(Decimal(row["billed_amount"]) for row in rows) == Decimal("27.00")
    assert pooled(bouncer)["transactions"] > before


def test_the_evaluation_task_runs_in_a_worker_on_its_own_pool(bouncer, settings, broker, tmp_path):
    # The workers' database carries their limits on every server session; the web's none.
    with closing(psycopg2.connect(bouncer.url(worker_alias()))) as worker_db:
        worker_db.autocommit = True
        with worker_db.cursor() as cursor:
            cursor.execute("SHOW lock_timeout")
            assert cursor.fetchone()[0] == "5s"
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "2min"
            cursor.execute("SHOW application_name")
            assert cursor.fetchone()[0] == WORKER_APPLICATION_NAME
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"

    settings.EVALUATION_COALESCE_SECONDS = 0.2
    app.control.purge()
    cache.delete(EVALUATION_SCHEDULED_KEY)
    tenant = TenantFactory.create(time_zone="UTC")
    set_rule(tenant, "sms", included_units=100, warning_thresholds=[80, 100])
    api = Api(api_key_create(tenant=tenant, name="e2e", scopes=ALL_SCOPES).raw_key)
    env = worker_environment(
        redis_url=broker.url,
        mail_dir=tmp_path / "mail",
        DATABASE_URL=bouncer.url(worker_alias()),
        DATABASE_POOLER="pgbouncer-transaction",
    )
    worker = Worker(env)
    try:
        before = pooled(bouncer, worker_alias())["transactions"]
        assert api.ingest([event("e1", channel="sms", quantity=85)]).status_code == 200
        wait_for(
            lambda: Notification.objects.filter(tenant=tenant, kind="threshold_warning").exists(),
            what="the threshold warning",
        )
        warning = Notification.objects.get(tenant=tenant, kind="threshold_warning")
        assert warning.payload["threshold"] == 80
        assert worker.logged("policies.evaluate_pending")
        assert pooled(bouncer, worker_alias())["transactions"] > before
    finally:
        worker.stop()
        print("".join(worker.log))  # shown by pytest when the test failed


def test_a_worker_sets_no_session_state_behind_a_transaction_pooler(settings):
    settings.TRANSACTION_POOLING = True
    session = connections.create_connection("default")
    try:
        worker_session_limit(session)
        with session.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('lock_timeout'), current_setting('application_name')"
            )
            assert cursor.fetchone() == ("0", "")
    finally:
        session.close()


def test_a_killed_worker_s_statement_ends_behind_the_pooler(bouncer):
    """A worker killed mid-statement: PgBouncer closes the server session its client left
    in a transaction, and the session's client check (the workers' connect_query) ends
    the statement instead of letting it run on."""
    client = subprocess.Popen(
        [sys.executable, "-c", "import psycopg2, sys\n"
         "psycopg2.connect(sys.argv[1]).cursor().execute('SELECT pg_sleep(600)')",
         bouncer.url(worker_alias())]
    )  # fmt: skip
    sleeping = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        " AND query = 'SELECT pg_sleep(600)' AND state = 'active'"
    )

    def sleeping_sessions() -> int:
        with closing(stack.connect()) as server, server.cursor() as cursor:
            cursor.execute(sleeping, [WORKER_APPLICATION_NAME])
            return int(cursor.fetchone()[0])

    try:
        wait_for(lambda: sleeping_sessions() == 1, timeout=15, what="the statement to run")
    finally:
        client.kill()
        client.wait(timeout=10)
    wait_for(lambda: sleeping_sessions() == 0, timeout=15, what="the session to end")
