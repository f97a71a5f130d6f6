"""The read replica's router (creditguard/db_router.py) on the test database: in tests the
alias ``replica`` is a mirror of ``default`` (a second connection to the same database),
so a read's connection shows where the router sent it. A real streaming replica, paused
and stopped, is tests/ops/test_replica.py's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db import OperationalError, connections, router, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY

from creditguard.db_router import (
    PIN_COOKIE,
    PRIMARY,
    REPLICA,
    LagJudge,
    replica_health_forget,
    replica_reads,
    route_reads_replica,
)
from metering.models import Balance, UsageRollup
from tenants.models import ApiKey, Membership, Scope, Tenant
from tests.conftest import event, issue
from tests.factories import MembershipFactory, TenantFactory, UserFactory

DATABASES = ["default", "replica"]
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@pytest.fixture
def replica_on(settings: Any) -> Iterator[None]:
    settings.DATABASE_REPLICA_READS = True
    settings.DATABASE_REPLICA_CHECK_SECONDS = 0.0
    replica_health_forget()
    yield
    replica_health_forget()


def fallbacks(reason: str) -> float:
    return (
        REGISTRY.get_sample_value("creditguard_db_replica_fallbacks_total", {"reason": reason})
        or 0.0
    )


# --- the router alone ------------------------------------------------------------------


def test_reads_outside_a_marked_request_go_to_the_primary(replica_on):
    assert Balance.objects.all().db == PRIMARY
    assert Tenant.objects.all().db == PRIMARY


def test_a_marked_block_reads_figures_from_the_replica_and_access_from_the_primary(
    replica_on,
):
    with replica_reads():
        assert Balance.objects.all().db == REPLICA
        assert UsageRollup.objects.all().db == REPLICA
        assert Tenant.objects.all().db == REPLICA
        # Who may see what is never judged on a copy that may lag behind a revocation.
        for model in (ApiKey, Membership, User, Session):
            assert model.objects.all().db == PRIMARY, model


def test_a_read_after_a_write_in_the_same_request_reads_the_primary(replica_on):
    with replica_reads():
        assert Tenant.objects.all().db == REPLICA
        assert router.db_for_write(Tenant) == PRIMARY
        assert Tenant.objects.all().db == PRIMARY
        assert Balance.objects.all().db == PRIMARY


@pytest.mark.django_db(transaction=True, serialized_rollback=True, databases=DATABASES)
def test_reads_in_a_transaction_and_locking_reads_go_to_the_primary(replica_on):
    with replica_reads():
        with transaction.atomic():
            assert Balance.objects.all().db == PRIMARY
        assert Balance.objects.select_for_update().db == PRIMARY


def test_only_the_chosen_routes_read_the_replica():
    for name in ("portal:overview", "v1:billing-export", "admin:index",
                 "admin:policies_overagecharge_changelist", "admin:tenants_tenant_changelist"):  # fmt: skip
        assert route_reads_replica(name), name
    for name in ("v1:usage-events", "v1:authorizations", "v1:balances", "portal:developers",
                 "admin:policies_tenant_limit", "admin:metering_channel_change",
                 # forms that save what they show: never replica values, which may lag
                 "admin:tenants_tenant_change", "admin:metering_channel_changelist"):  # fmt: skip
        assert not route_reads_replica(name), name


# --- through the app ---------------------------------------------------------------------


@pytest.fixture
def owner_client(replica_on) -> tuple[Client, Tenant]:
    tenant = TenantFactory.create(slug="replica-alpha", language="en", time_zone="UTC")
    user = UserFactory.create(username="replica-owner")
    MembershipFactory.create(tenant=tenant, user=user, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(user, backend=MODEL_BACKEND)
    return client, tenant


def replica_queries(client: Client, path: str) -> tuple[Any, list[str], list[str]]:
    with (
        CaptureQueriesContext(connections[REPLICA]) as replica,
        CaptureQueriesContext(connections[PRIMARY]) as primary,
    ):
        response = client.get(path)
        if response.streaming:
            b"".join(response.streaming_content)  # type: ignore[attr-defined]
        response.close()
    return (
        response,
        [q["sql"] for q in replica.captured_queries],
        [q["sql"] for q in primary.captured_queries],
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True, databases=DATABASES)
def test_the_dashboard_reads_its_figures_from_the_replica_unless_it_lags(owner_client, settings):
    client, _tenant = owner_client
    response, on_replica, on_primary = replica_queries(client, "/dashboard/")
    assert response.status_code == 200
    assert "pg_last_wal_replay_lsn" in on_replica[0]  # the lag check, then the figures
    assert any('"policies_limitrule"' in sql for sql in on_replica), on_replica
    # The session, the person and their memberships from the primary.
    assert any('"django_session"' in sql for sql in on_primary)
    assert any('"tenants_membership"' in sql for sql in on_primary)
    assert not any('"tenants_membership"' in sql for sql in on_replica)

    # The usage page's rollups, read by raw SQL, on the router's connection too.
    response, on_replica, _ = replica_queries(client, "/usage/")
    assert response.status_code == 200
    assert any("metering_usagerollup" in sql for sql in on_replica), on_replica

    # A page not chosen reads only the primary.
    response, on_replica, _ = replica_queries(client, "/developers/")
    assert response.status_code == 200
    assert on_replica == []

    # A replica behind by more than the setting: only its lag is read, and counted.
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = -1.0  # any lag is too much
    before = fallbacks("lag")
    response, on_replica, _ = replica_queries(client, "/dashboard/")
    assert response.status_code == 200
    assert len(on_replica) == 1 and "pg_last_wal_replay_lsn" in on_replica[0]
    assert fallbacks("lag") == before + 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True, databases=DATABASES)
def test_after_a_post_the_same_person_reads_the_primary_for_the_pin(owner_client, settings):
    client, _tenant = owner_client
    response = client.post("/notifications/recipients/", {"recipient-email": "ops@alpha.example"})
    assert response.status_code == 302
    assert PIN_COOKIE in response.cookies
    assert response.cookies[PIN_COOKIE]["max-age"] == int(settings.DATABASE_REPLICA_PIN_SECONDS) + 1
    response, on_replica, _ = replica_queries(client, "/notifications/")
    assert response.status_code == 200
    assert b"ops@alpha.example" in response.content
    assert on_replica == []
    # Once the pin has ended, the replica again.
    client.cookies[PIN_COOKIE] = "1"
    response, on_replica, _ = replica_queries(client, "/notifications/")
    assert response.status_code == 200 and on_replica


@pytest.mark.django_db(transaction=True, serialized_rollback=True, databases=DATABASES)
def test_the_billing_export_reads_the_replica_and_ingestion_the_primary(replica_on):
    tenant = TenantFactory.create(slug="replica-export", time_zone="UTC")
    key = issue(tenant, [Scope.USAGE_WRITE, Scope.BILLING_READ]).raw_key
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    with CaptureQueriesContext(connections[REPLICA]) as replica:
        ingest = client.post(
            "/api/v1/usage-events",
            {"events": [event("r1", quantity=7)]},
            content_type="application/json",
        )
    assert ingest.status_code in (200, 201, 207), ingest.content
    # Ingestion never reads the replica, and an API client (no cookies) is not pinned.
    assert replica.captured_queries == []
    assert PIN_COOKIE not in ingest.cookies
    period = Balance.objects.get(tenant=tenant).period.label
    response, on_replica, on_primary = replica_queries(
        client, f"/api/v1/billing/export?period={period}&format=csv"
    )
    assert response.status_code == 200
    assert any("metering_balance" in sql for sql in on_replica), on_replica
    # The key is authenticated on the primary.
    assert any('"tenants_apikey"' in sql for sql in on_primary)
    # JSON pages too.
    response, on_replica, _ = replica_queries(client, f"/api/v1/billing/export?period={period}")
    assert response.status_code == 200 and response.json()["results"]
    assert any("metering_balance" in sql for sql in on_replica)


@pytest.mark.django_db(transaction=True, serialized_rollback=True, databases=DATABASES)
def test_a_page_the_replica_fails_is_answered_again_from_the_primary(owner_client):
    client, _tenant = owner_client
    client.raise_request_exception = False  # the first attempt's 500 is logged, not raised

    def replica_gone(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if "pg_last_wal_replay_lsn" in sql:  # it still answers its health check
            return execute(sql, params, many, context)
        raise OperationalError("terminating connection due to conflict with recovery")

    before = fallbacks("error")
    with connections[REPLICA].execute_wrapper(replica_gone):
        response, on_replica, on_primary = replica_queries(client, "/dashboard/")
    assert response.status_code == 200
    assert any('"policies_limitrule"' in sql for sql in on_primary)
    assert fallbacks("error") == before + 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True, databases=DATABASES)
def test_the_consoles_start_page_and_lists_read_the_replica(replica_on):
    TenantFactory.create(slug="replica-console")
    staff = User.objects.create_superuser("replica-staff", "staff@example.com", "x")
    client = Client()
    client.force_login(staff, backend=MODEL_BACKEND)
    pages = {
        "/admin/": '"policies_overagecharge"',  # the start page's queues
        "/admin/tenants/tenant/": '"tenants_tenant"',
    }
    for path, table in pages.items():
        response, on_replica, on_primary = replica_queries(client, path)
        assert response.status_code == 200, path
        assert any(table in sql for sql in on_replica), (path, on_replica)
        # The staff member and their permissions from the primary (the replica may join a
        # user for a name, as the restrictions' authors).
        assert not [sql for sql in on_replica if re.search(r'FROM "auth_', sql)], path
        assert any(re.search(r'FROM "auth_user"', sql) for sql in on_primary), path


@pytest.mark.django_db(transaction=True, serialized_rollback=True, databases=DATABASES)
def test_a_console_form_that_saves_what_it_shows_reads_the_primary(replica_on):
    """The tenant's page and the channels' list (Active boxes) are saved as shown: a value
    read from a lagging replica and sent back would undo a colleague's save."""
    tenant = TenantFactory.create(slug="replica-form")
    staff = User.objects.create_superuser("replica-staff", "staff@example.com", "x")
    client = Client()
    client.force_login(staff, backend=MODEL_BACKEND)
    for path in (f"/admin/tenants/tenant/{tenant.pk}/change/", "/admin/metering/channel/"):
        response, on_replica, on_primary = replica_queries(client, path)
        assert response.status_code == 200, path
        assert on_replica == [], (path, on_replica)
        assert on_primary, path


# --- the lag, judged from both servers' positions --------------------------------------


def test_a_replica_caught_up_with_the_primary_has_no_lag_however_old_its_last_commit():
    judge = LagJudge()
    assert judge.lag(at=100.0, primary=500, replayed=500, replay_age=3600.0) == 0.0
    assert judge.lag(at=101.0, primary=500, replayed=600, replay_age=None) == 0.0


def test_behind_the_lag_is_the_smaller_bound_the_last_replayed_commit_or_a_check_reached():
    judge = LagJudge()
    assert judge.lag(at=10.0, primary=100, replayed=100, replay_age=50.0) == 0.0
    # Behind by WAL written since the check at 10 s, whose position it holds: at most 2 s,
    # though its last replayed commit is a minute old (the primary was idle till then).
    assert judge.lag(at=12.0, primary=200, replayed=150, replay_age=60.0) == 2.0
    # Its last replayed commit is younger than that check: that bound.
    assert judge.lag(at=13.0, primary=300, replayed=250, replay_age=0.5) == 0.5
    # Nothing bounds it (no commit replayed yet, no check reached): not usable.
    assert LagJudge().lag(at=1.0, primary=10, replayed=5, replay_age=None) == float("inf")


def test_a_stalled_stream_counts_as_lag_from_the_primarys_next_commit():
    """The replica replays all it receives, but receives nothing more: it never says it is
    behind, yet the checks show the primary moving on without it."""
    judge = LagJudge()
    assert judge.lag(at=0.0, primary=1000, replayed=1000, replay_age=0.2) == 0.0
    lags = [
        judge.lag(at=float(second), primary=1000 + second, replayed=1000, replay_age=None)
        for second in range(1, 8)
    ]
    assert lags == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


def test_the_judge_keeps_a_bounded_memory_of_checks():
    judge = LagJudge()
    for second in range(1000):
        judge.lag(at=float(second), primary=second + 1, replayed=0, replay_age=None)
    assert len(judge._seen) <= LagJudge.KEEP
    # Caught up again, the checks it reached bound it from then on.
    assert judge.lag(at=1000.0, primary=2000, replayed=2000, replay_age=None) == 0.0
    assert judge.lag(at=1001.5, primary=2100, replayed=2050, replay_age=None) == 1.5
