"""metering.sql: each statement on PostgreSQL, its names from the models, no enum value in
its text, and the ORM path that the embedded SQLite default takes (forced here)."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime

import pytest
from django.db import OperationalError, connection, transaction

from metering import sql as metering_sql
from metering.models import (
    Balance,
    BillingPeriod,
    Channel,
    LedgerEntry,
    UsageEvent,
    UsageRollup,
)
from metering.services.ingest import usage_record_batch
from metering.services.periods import (
    period_bounds,
    period_lock_of_balance,
    periods_lock_for_booking,
)
from tests.conftest import event
from tests.factories import TenantFactory

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# A quoted word in SQL text: an enum value or a reason spelled into the statement.
QUOTED_WORD = re.compile(r"'[A-Za-z_]+'")


def _all_statements() -> dict[str, str]:
    return {
        "insert": metering_sql._usage_events_insert(),
        "periods": metering_sql._periods_for_booking(),
        "period of balance": metering_sql._period_of_balance(),
        "mark evaluated": metering_sql._balances_mark_evaluated(),
        "current period": metering_sql.current_period_locked_cte(),
        "reserve": metering_sql.balance_reserve_cte(channel_id="1", period_id="2", allowed="true"),
        "read": metering_sql.balance_read_cte(channel_id="1", period_id="2"),
        "authorization": metering_sql.authorization_insert_cte(source="decided"),
        "hold": metering_sql.hold_entry_insert_cte(source="auth"),
        "rollups add": metering_sql._usage_rollups_add(),
        "rollups drop": metering_sql._usage_rollups_drop(),
        "rollups rebuild": metering_sql._usage_rollups_rebuild(),
        "rollups read": metering_sql._usage_rollups_read(),
        "events lock": metering_sql._usage_events_lock(),
    }


def test_statements_name_tables_from_the_models_and_bind_every_value():
    statements = _all_statements()
    tables = {
        "insert": UsageEvent,
        "periods": BillingPeriod,
        "period of balance": Balance,
        "mark evaluated": Balance,
        "current period": BillingPeriod,
        "reserve": Balance,
        "read": Balance,
        "authorization": metering_sql.Authorization,
        "hold": LedgerEntry,
        "rollups add": UsageRollup,
        "rollups drop": UsageRollup,
        "rollups rebuild": UsageRollup,
        "rollups read": UsageRollup,
        "events lock": UsageEvent,
    }
    for name, sql in statements.items():
        assert tables[name]._meta.db_table in sql, name
        assert not QUOTED_WORD.findall(sql), (name, QUOTED_WORD.findall(sql))


def test_the_enum_values_bound_are_the_models_own():
    assert {
        "period_open": BillingPeriod.Status.OPEN.value,
        "entry_hold": LedgerEntry.Kind.HOLD.value,
        "status_held": metering_sql.Authorization.Status.HELD.value,
    } == metering_sql.CONSTANTS


@pytest.fixture
def booked(db):
    """A tenant with a balance of 5 sms units in November 2026."""
    tenant = TenantFactory.create(slug="sql")
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event("a", channel="sms", quantity=5, occurred_at=NOW.isoformat())]},
        now=NOW,
    )
    return tenant


def test_usage_events_insert_returns_only_the_ids_it_inserted(booked):
    period = BillingPeriod.objects.get(tenant=booked)
    sms = Channel.objects.get(code="sms")

    def insert(ids: list[str]) -> set[str]:
        return metering_sql.usage_events_insert(
            tenant_id=booked.pk,
            batch_id=uuid.uuid4(),
            received_at=NOW,
            channel_ids=[sms.pk] * len(ids),
            period_ids=[period.pk] * len(ids),
            client_event_ids=ids,
            quantities=[2] * len(ids),
            occurred_ats=[NOW] * len(ids),
            metadata_json=['{"k": 1}'] * len(ids),
            content_hashes=["h"] * len(ids),
        )

    assert insert(["b", "c"]) == {"b", "c"}
    assert insert(["a", "c", "d"]) == {"d"}  # "a" came by ingestion, "c" just now
    stored = UsageEvent.objects.get(tenant=booked, client_event_id="d")
    assert (stored.quantity, stored.metadata, stored.period_id) == (2, {"k": 1}, period.pk)


def test_periods_lock_shared_reads_the_periods_in_start_order(booked):
    october = BillingPeriod.objects.create(
        tenant=booked,
        label="2026-10",
        starts_at=datetime(2026, 10, 1, tzinfo=UTC),
        ends_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    with transaction.atomic():
        rows = metering_sql.periods_lock_shared(
            tenant_id=booked.pk, labels=["2026-11", "2026-10", "2027-01"]
        )
    assert [p.label for p in rows] == ["2026-10", "2026-11"]
    assert rows[0].pk == october.pk


def test_period_of_balance_lock_shared_is_the_balances_period(booked):
    balance = Balance.objects.get(tenant=booked)
    with transaction.atomic():
        assert metering_sql.period_of_balance_lock_shared(balance_id=balance.pk) == balance.period


def test_balances_mark_evaluated_only_moves_forward(booked):
    balance = Balance.objects.get(tenant=booked)
    assert metering_sql.balances_mark_evaluated(versions={balance.pk: balance.version}) == 1
    assert metering_sql.balances_mark_evaluated(versions={balance.pk: balance.version - 1}) == 0
    balance.refresh_from_db()
    assert balance.evaluated_version == balance.version
    assert metering_sql.balances_mark_evaluated(versions={}) == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_period_lock_is_shared_and_holds_off_the_close():
    tenant = TenantFactory.create(slug="sql-lock")
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event("a", channel="sms", quantity=1, occurred_at=NOW.isoformat())]},
        now=NOW,
    )
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                metering_sql.periods_lock_shared(tenant_id=tenant.pk, labels=["2026-11"])
                held.set()
                done.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '300ms'")
            # Another booking shares the lock …
            assert metering_sql.periods_lock_shared(tenant_id=tenant.pk, labels=["2026-11"])
        # … while the close's update of the row waits for it.
        with pytest.raises(OperationalError, match="lock timeout"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '300ms'")
            BillingPeriod.objects.filter(tenant=tenant).update(status=BillingPeriod.Status.CLOSED)
    finally:
        done.set()
        holder.join()


@pytest.fixture
def orm_path(monkeypatch):
    """The embedded SQLite default's path, forced on PostgreSQL."""
    monkeypatch.setattr(metering_sql, "native", lambda: False)


def test_the_orm_path_records_a_batch_like_the_statement(booked, orm_path):
    result = usage_record_batch(
        tenant=booked,
        payload={
            "events": [
                event("a", channel="sms", quantity=5, occurred_at=NOW.isoformat()),
                event("b", channel="sms", quantity=3, occurred_at=NOW.isoformat()),
            ]
        },
        now=NOW,
    )
    assert (result.accepted, result.duplicates) == (1, 1)
    balance = Balance.objects.get(tenant=booked)
    assert balance.used == 8
    assert UsageEvent.objects.filter(tenant=booked).count() == 2


def test_the_orm_path_takes_the_periods_and_the_period_of_a_balance(booked, orm_path):
    balance = Balance.objects.get(tenant=booked)
    with transaction.atomic():
        periods = periods_lock_for_booking(
            tenant=booked, bounds=[period_bounds(tenant=booked, at=NOW)]
        )
        assert periods["2026-11"].pk == balance.period_id
        assert period_lock_of_balance(balance_id=balance.pk).pk == balance.period_id


def test_rollups_add_twice_sums_and_the_read_takes_spans_and_raw_windows(db):
    tenant = TenantFactory.create(slug="rollups")
    sms = Channel.objects.get(code="sms")
    with transaction.atomic():
        for _ in range(2):
            metering_sql.usage_rollups_add(
                tenant_id=tenant.pk,
                channel_ids=[sms.pk, sms.pk],
                slot_seconds=[900, 3600],
                slot_starts=[NOW, NOW],
                quantities=[4, 4],
                event_counts=[1, 1],
            )
    rows = UsageRollup.objects.for_tenant(tenant).order_by("slot_seconds")
    assert [(r.slot_seconds, r.quantity, r.event_count) for r in rows] == [
        (900, 8, 2),
        (3600, 8, 2),
    ]
    read = metering_sql.usage_rollups_read(
        tenant_id=tenant.pk,
        channel_ids=[sms.pk],
        slots=[(3600, NOW, NOW.replace(hour=13), 0), (900, NOW, NOW.replace(minute=15), 1)],
        raw=[(NOW, NOW.replace(minute=1), 2)],
    )
    assert sorted(read) == [(0, sms.pk, 8), (1, sms.pk, 8)]
