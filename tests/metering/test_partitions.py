"""Monthly partitions of usage events and the ledger, and the idempotency keys' window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum

from creditguard.errors import Conflict, Unprocessable
from metering.models import Balance, BillingPeriod, LedgerEntry, UsageEvent, UsageEventKey
from metering.services.ingest import usage_event_keys_prune, usage_record_batch
from metering.services.partitions import (
    month_add,
    partitions_archive,
    partitions_ensure,
    partitions_list,
    partitions_months_ahead,
)
from metering.services.periods import period_mark_closed
from tenants.models import Tenant
from tests.conftest import event
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

NOVEMBER = datetime(2026, 11, 20, 12, tzinfo=UTC)
# A UTC tenant's November ends at 1 Dec 00:00 and may close after its grace window.
CLOSED_AT = datetime(2026, 12, 1, 3, tzinfo=UTC)


def record(tenant: Tenant, *events: dict, now: datetime) -> tuple[int, int]:
    result = usage_record_batch(tenant=tenant, payload={"events": list(events)}, now=now)
    return result.accepted, result.duplicates


def partition_of(client_event_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM metering_usageevent WHERE client_event_id = %s",
            [client_event_id],
        )
        return cursor.fetchone()[0]


def ledger_partitions(tenant: Tenant) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT tableoid::regclass::text FROM metering_ledgerentry WHERE tenant_id = %s",
            [tenant.pk],
        )
        return {row[0] for row in cursor.fetchall()}


def assert_ledger_matches_balances(tenant: Tenant) -> None:
    for balance in Balance.objects.for_tenant(tenant):
        sums = LedgerEntry.objects.filter(balance=balance).aggregate(
            a=Sum("available_delta"), u=Sum("used_delta"), r=Sum("reserved_delta")
        )
        assert (sums["a"] or 0, sums["u"] or 0, sums["r"] or 0) == (
            balance.available,
            balance.used,
            balance.reserved,
        )


def test_a_replay_is_a_duplicate_while_its_key_is_kept_and_refused_once_it_is_pruned():
    tenant = TenantFactory.create(slug="window", time_zone="UTC")
    sent = event("k-1", quantity=7, occurred_at="2026-11-20T10:00:00Z")
    assert record(tenant, sent, now=NOVEMBER) == (1, 0)
    assert record(tenant, sent, now=NOVEMBER + timedelta(days=5)) == (0, 1)

    # A key of an open period is never pruned, however old.
    assert usage_event_keys_prune(now=NOVEMBER + timedelta(days=400)) == 0
    assert UsageEventKey.objects.filter(tenant=tenant, client_event_id="k-1").exists()

    november = BillingPeriod.objects.get(tenant=tenant, label="2026-11")
    assert period_mark_closed(period=november, now=CLOSED_AT)
    just_inside = CLOSED_AT + timedelta(hours=23, minutes=59)
    assert usage_event_keys_prune(now=just_inside) == 0
    # A retry after the close, inside the window: a duplicate, not a refusal.
    assert record(tenant, sent, now=just_inside) == (0, 1)
    # Other content under the same id, or a new id, for the closed period: refused.
    with pytest.raises(Unprocessable) as refused:
        record(tenant, {**sent, "quantity": 8}, now=just_inside)
    assert refused.value.extra == {"code": "period_closed"}

    assert usage_event_keys_prune(now=CLOSED_AT + timedelta(hours=24)) == 1
    assert not UsageEventKey.objects.filter(tenant=tenant).exists()
    with pytest.raises(Unprocessable) as refused:
        record(tenant, sent, now=CLOSED_AT + timedelta(hours=24))
    assert refused.value.extra == {"code": "period_closed"}
    # Booked once, whatever was replayed.
    assert UsageEvent.objects.filter(tenant=tenant).count() == 1
    assert Balance.objects.get(tenant=tenant, period=november).used == 7


def test_keys_are_pruned_in_chunks_and_only_those_of_periods_closed_long_enough():
    tenant = TenantFactory.create(slug="chunks", time_zone="UTC")
    record(tenant, *[event(f"n-{i}", occurred_at="2026-11-20T10:00:00Z") for i in range(5)],
           now=NOVEMBER)  # fmt: skip
    december = datetime(2026, 12, 2, tzinfo=UTC)
    record(tenant, event("d-1", occurred_at="2026-12-02T00:00:00Z"), now=december)
    period_mark_closed(period=BillingPeriod.objects.get(tenant=tenant, label="2026-11"),
                       now=CLOSED_AT)  # fmt: skip
    assert usage_event_keys_prune(now=CLOSED_AT + timedelta(days=2), chunk=2) == 5
    assert list(UsageEventKey.objects.values_list("client_event_id", flat=True)) == ["d-1"]


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_events_either_side_of_midnight_land_in_their_months_and_ids_stay_unique_across():
    partitions_ensure(start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2027, 1, 1, tzinfo=UTC))
    tenant = TenantFactory.create(slug="midnight", time_zone="UTC")
    inside_grace = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    last = event("b-1", occurred_at="2026-11-30T23:59:59.999Z")
    first = event("b-2", occurred_at="2026-12-01T00:00:00Z")
    assert record(tenant, last, first, now=inside_grace) == (2, 0)
    assert partition_of("b-1") == "metering_usageevent_p2026_11"
    assert partition_of("b-2") == "metering_usageevent_p2026_12"
    # The same id in the other month: other content, a conflict; nothing recorded.
    with pytest.raises(Conflict):
        record(tenant, {**last, "occurred_at": "2026-12-01T00:00:00Z"}, now=inside_grace)
    with pytest.raises(Conflict):
        record(tenant, {**first, "occurred_at": "2026-11-30T23:59:59.999Z"}, now=inside_grace)
    assert record(tenant, first, last, now=inside_grace) == (0, 2)
    assert UsageEvent.objects.filter(tenant=tenant).count() == 2


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_ensure_moves_rows_of_the_default_into_the_new_month_and_the_ledger_stays_append_only():
    tenant = TenantFactory.create(slug="far", time_zone="UTC")
    march = datetime(2029, 3, 10, tzinfo=UTC)
    record(tenant, event("f-1", quantity=3, occurred_at="2029-03-10T00:00:00Z"), now=march)
    assert partition_of("f-1") == "metering_usageevent_default"
    assert ledger_partitions(tenant) == {"metering_ledgerentry_default"}
    entries = LedgerEntry.objects.filter(tenant=tenant).count()

    created = partitions_ensure(start=march, end=datetime(2029, 4, 1, tzinfo=UTC))
    assert created == ["metering_usageevent_p2029_03", "metering_ledgerentry_p2029_03"]
    assert partitions_ensure(start=march, end=datetime(2029, 4, 1, tzinfo=UTC)) == []
    assert partition_of("f-1") == "metering_usageevent_p2029_03"
    assert ledger_partitions(tenant) == {"metering_ledgerentry_p2029_03"}
    assert LedgerEntry.objects.filter(tenant=tenant).count() == entries
    assert_ledger_matches_balances(tenant)

    # The triggers hold on the new partition and again on the default.
    may = datetime(2029, 5, 10, tzinfo=UTC)
    record(tenant, event("f-2", occurred_at="2029-05-10T00:00:00Z"), now=may)
    assert ledger_partitions(tenant) == {
        "metering_ledgerentry_p2029_03",
        "metering_ledgerentry_default",
    }
    for entry in LedgerEntry.objects.filter(tenant=tenant):
        with pytest.raises(IntegrityError), transaction.atomic():
            LedgerEntry.objects.filter(pk=entry.pk).update(reason="rewritten")
        with pytest.raises(IntegrityError), transaction.atomic():
            LedgerEntry.objects.filter(pk=entry.pk).delete()
    # And the same id is still a duplicate across the moved partition.
    assert record(tenant, event("f-1", quantity=3, occurred_at="2029-03-10T00:00:00Z"),
                  now=march + timedelta(days=1)) == (0, 1)  # fmt: skip


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_retention_archives_closed_months_only_and_leaves_open_balances_whole(settings):
    settings.USAGE_RETENTION_MONTHS = 1
    tenant = TenantFactory.create(slug="old", time_zone="UTC")
    january, march = datetime(2029, 1, 10, tzinfo=UTC), datetime(2029, 3, 10, tzinfo=UTC)
    partitions_ensure(start=january, end=datetime(2029, 4, 1, tzinfo=UTC))
    record(tenant, event("o-1", quantity=4, occurred_at="2029-01-10T00:00:00Z"), now=january)
    record(tenant, event("o-2", quantity=5, occurred_at="2029-03-10T00:00:00Z"), now=march)
    now = datetime(2029, 3, 15, tzinfo=UTC)

    # January's period is still open: nothing of January goes.
    assert "metering_usageevent_p2029_01" not in partitions_archive(now=now, dry_run=True)

    period_mark_closed(period=BillingPeriod.objects.get(tenant=tenant, label="2029-01"),
                       now=datetime(2029, 2, 1, 3, tzinfo=UTC))  # fmt: skip
    planned = partitions_archive(now=now, dry_run=True)
    assert {"metering_usageevent_p2029_01", "metering_ledgerentry_p2029_01"} <= set(planned)
    assert not {"metering_usageevent_p2029_03", "metering_ledgerentry_p2029_03"} & set(planned)
    open_balance = Balance.objects.get(tenant=tenant, period__label="2029-03")

    assert partitions_archive(now=now) == planned
    names = {p.name for p in partitions_list()}
    assert "metering_usageevent_p2029_01" not in names
    assert "metering_usageevent_p2029_03" in names
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM archive.metering_usageevent_p2029_01")
        assert cursor.fetchone()[0] == 1
    # The archived ledger stays append-only: its trigger is created again after DETACH.
    for statement in (
        "UPDATE archive.metering_ledgerentry_p2029_01 SET reason = 'rewritten'",
        "DELETE FROM archive.metering_ledgerentry_p2029_01",
    ):
        with (
            pytest.raises(IntegrityError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM archive.metering_ledgerentry_p2029_01")
        assert cursor.fetchone()[0] > 0
    kept = UsageEvent.objects.filter(tenant=tenant).values_list("client_event_id", flat=True)
    assert list(kept) == ["o-2"]
    still = Balance.objects.get(pk=open_balance.pk)
    assert still.used == 5
    assert (still.available, still.used, still.reserved) == (
        open_balance.available,
        open_balance.used,
        open_balance.reserved,
    )
    for balance in Balance.objects.for_tenant(tenant).filter(period__label="2029-03"):
        sums = LedgerEntry.objects.filter(balance=balance).aggregate(
            a=Sum("available_delta"), u=Sum("used_delta")
        )
        assert (sums["a"] or 0, sums["u"] or 0) == (balance.available, balance.used)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_the_command_lists_partitions_and_says_what_it_would_do(capsys):
    call_command("partitions", "--ensure", "--archive", "--dry-run")
    out = capsys.readouterr().out
    assert "metering_usageevent_default" in out and "metering_ledgerentry_default" in out
    assert "Would create:" in out and "Would archive: nothing" in out


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_months_ahead_counts_whole_months_with_both_partitions():
    now = datetime(2031, 6, 15, tzinfo=UTC)
    assert partitions_months_ahead(now=now) == 0
    partitions_ensure(
        start=datetime(2031, 6, 1, tzinfo=UTC), end=month_add(datetime(2031, 6, 1, tzinfo=UTC), 4)
    )
    assert partitions_months_ahead(now=now) == 3


def test_the_staff_lists_of_events_and_entries_show_recent_months_without_counting_them(
    monkeypatch,
):
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse
    from django.utils import timezone

    from console.admin import ledger as ledger_admin
    from tests.admin.test_console import staff

    tenant = TenantFactory.create(slug="lists", time_zone="UTC")
    now = timezone.now()
    old = now - timedelta(days=100)
    record(tenant, event("recent-1", occurred_at=now.isoformat()), now=now)
    record(tenant, event("old-1", occurred_at=old.isoformat()), now=old)
    client = staff(superuser=True)
    events = reverse("admin:metering_usageevent_changelist")
    page = client.get(events).content.decode()
    assert "recent-1" in page and "old-1" not in page
    assert "old-1" in client.get(events, {"recent": "12m"}).content.decode()
    entries = client.get(reverse("admin:metering_ledgerentry_changelist"), {"recent": "all"})
    assert entries.status_code == 200

    if connection.vendor == "postgresql":
        monkeypatch.setattr(ledger_admin, "EXACT_COUNT_UP_TO", 0)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(events, {"recent": "all"}).status_code == 200
        counts = [
            q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "usageevent" in q["sql"]
        ]
        assert counts == []


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_the_scrape_says_how_many_months_of_partitions_are_ready_ahead(client, settings):
    from django.utils import timezone

    from creditguard.views import metrics  # noqa: F401 - the view the scrape calls
    from metering.services.partitions import month_start

    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.METRICS_TOKEN = ""
    this = month_start(timezone.now())
    partitions_ensure(start=this, end=month_add(this, 6))
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "creditguard_partition_months_ahead 5.0" in body


def test_the_portable_path_claims_keys_the_same_way(monkeypatch):
    from metering import sql as metering_sql

    monkeypatch.setattr(metering_sql, "native", lambda: False)
    tenant = TenantFactory.create(slug="portable", time_zone="UTC")
    sent = event("p-1", quantity=2, occurred_at="2026-11-20T10:00:00Z")
    assert record(tenant, sent, event("p-2", occurred_at="2026-11-20T10:00:00Z"), now=NOVEMBER) == (
        2,
        0,
    )
    assert record(tenant, sent, event("p-3", occurred_at="2026-11-20T10:00:00Z"), now=NOVEMBER) == (
        1,
        1,
    )
    with pytest.raises(Conflict):
        record(tenant, {**sent, "quantity": 3}, now=NOVEMBER)
    keys = UsageEventKey.objects.for_tenant(tenant).values_list("client_event_id", flat=True)
    assert sorted(keys) == ["p-1", "p-2", "p-3"]
    assert UsageEvent.objects.filter(tenant=tenant).count() == 3


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_the_command_shows_estimates_unless_asked_to_count_and_ensures_older_months(capsys):
    from django.test.utils import CaptureQueriesContext

    tenant = TenantFactory.create(slug="older", time_zone="UTC")
    march = datetime(2029, 3, 10, tzinfo=UTC)
    record(tenant, event("c-1", occurred_at="2029-03-10T00:00:00Z"), now=march)
    assert partition_of("c-1") == "metering_usageevent_default"
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE metering_usageevent_default")

    with CaptureQueriesContext(connection) as queries:
        call_command("partitions")
    assert not [q for q in queries if "count(" in q["sql"].lower()]
    out = capsys.readouterr().out
    assert "rows (estimate)" in out
    assert "metering_usageevent_default holds rows" in out and "--from YYYY-MM" in out

    call_command("partitions", "--count")
    out = capsys.readouterr().out
    default = next(
        line for line in out.splitlines() if line.startswith("metering_usageevent_default")
    )
    assert default.split()[-2:] == ["1", "rows"]

    call_command("partitions", "--ensure", "--from", "2029-03", "--dry-run")
    assert "metering_usageevent_p2029_03" in capsys.readouterr().out
    call_command("partitions", "--ensure", "--from", "2029-03")
    assert "metering_usageevent_p2029_03" in capsys.readouterr().out.split("Created:")[1]
    assert partition_of("c-1") == "metering_usageevent_p2029_03"
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("partitions", "--ensure", "--from", "March")
