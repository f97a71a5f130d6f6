"""Upgrading a populated database through metering 0012 (the events and the ledger
rebuilt as monthly partitions, idempotency keys moved to their own table): rows, sums,
the ledger's invariant and append-only trigger, the id sequence and dedupe all survive."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from creditguard.errors import Conflict
from metering.models import Balance, LedgerEntry, UsageEvent
from metering.services.ingest import usage_record_batch
from tests.conftest import event
from tests.factories import TenantFactory

pytestmark = pytest.mark.skipif("connection.vendor != 'postgresql'")

BEFORE, AFTER = (
    ("metering", "0011_authorization_retry_at"),
    (
        "metering",
        "0012_usage_events_and_ledger_by_month",
    ),
)
NOVEMBER = datetime(2026, 11, 20, 12, tzinfo=UTC)
# Either side of month boundaries, as written by the old code (raw SQL: the model's
# table has changed since).
OLD_EVENTS = [
    ("old-oct-last", 2, "2026-10-31 23:59:59.999999+00", '{"route": "eu"}'),
    ("old-nov-first", 3, "2026-11-01 00:00:00+00", "{}"),
    ("old-dec-last", 5, "2026-12-31 23:59:59.999999+00", '{"nested": {"a": [1, 2]}}'),
    ("old-jan-first", 7, "2027-01-01 00:00:00+00", '{"ü": "ß"}'),
    ("old-2019", 11, "2019-06-15 08:00:00+00", "{}"),  # a month with no partition ahead
]


def table_rows(sql: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def snapshot() -> dict[str, object]:
    return {
        "events": table_rows(
            "SELECT id, tenant_id, client_event_id, quantity, occurred_at, metadata::text, "
            "content_hash FROM metering_usageevent ORDER BY id"
        ),
        "ledger": table_rows(
            "SELECT balance_id, count(*), sum(available_delta), sum(used_delta), "
            "sum(reserved_delta), max(id) FROM metering_ledgerentry GROUP BY 1 ORDER BY 1"
        ),
        "balances": table_rows(
            "SELECT id, available, used, reserved FROM metering_balance ORDER BY id"
        ),
    }


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_populated_database_upgrades_through_0012():
    tenant = TenantFactory.create(slug="upgrade", time_zone="UTC")
    recorded = event("new-1", quantity=4, occurred_at="2026-11-20T10:00:00Z")
    assert usage_record_batch(tenant=tenant, payload={"events": [recorded]}, now=NOVEMBER).accepted
    balance = Balance.objects.get(tenant=tenant, channel__code="sms")
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate([BEFORE])
        assert not table_rows("SELECT 1 FROM pg_class WHERE relname = 'metering_usageeventkey'")
        assert table_rows("SELECT relkind FROM pg_class WHERE relname = 'metering_usageevent'") == [
            ("r",)
        ]
        with connection.cursor() as cursor:
            for client_id, quantity, at, metadata in OLD_EVENTS:
                cursor.execute(
                    "INSERT INTO metering_usageevent (tenant_id, channel_id, period_id, "
                    "client_event_id, quantity, occurred_at, metadata, content_hash, batch_id, "
                    "received_at) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, "
                    "gen_random_uuid(), %s)",
                    [tenant.pk, balance.channel_id, balance.period_id, client_id, quantity, at,
                     metadata, f"hash-{client_id}", at],
                )  # fmt: skip
                cursor.execute(
                    "INSERT INTO metering_ledgerentry (tenant_id, balance_id, kind, "
                    "available_delta, used_delta, reserved_delta, draws, event_count, reason, "
                    "created_at) VALUES (%s, %s, 'usage', 0, %s, 0, '[]'::jsonb, 1, '', %s)",
                    [tenant.pk, balance.pk, quantity, at],
                )
                cursor.execute(
                    "UPDATE metering_balance SET used = used + %s WHERE id = %s",
                    [quantity, balance.pk],
                )
        old = snapshot()
        old_max_id = max(row[0] for row in old["events"])  # type: ignore[attr-defined]

        executor = MigrationExecutor(connection)
        executor.migrate([AFTER])
        assert table_rows("SELECT relkind FROM pg_class WHERE relname = 'metering_usageevent'") == [
            ("p",)
        ]
        assert snapshot() == old
        partitions = dict(
            table_rows("SELECT client_event_id, tableoid::regclass::text FROM metering_usageevent")
        )
        assert partitions["old-oct-last"] == "metering_usageevent_p2026_10"
        assert partitions["old-nov-first"] == "metering_usageevent_p2026_11"
        assert partitions["old-dec-last"] == "metering_usageevent_p2026_12"
        assert partitions["old-jan-first"] == "metering_usageevent_p2027_01"
        assert partitions["old-2019"] == "metering_usageevent_p2019_06"
        assert table_rows("SELECT count(*) FROM metering_usageeventkey") == [(6,)]
    finally:
        MigrationExecutor(connection).migrate(leaves)

    # The ledger's invariant: every balance is the sum of its entries.
    for each in Balance.objects.all():
        entries = LedgerEntry.objects.filter(balance=each)
        assert [
            sum(e.available_delta for e in entries),
            sum(e.used_delta for e in entries),
            sum(e.reserved_delta for e in entries),
        ] == [each.available, each.used, each.reserved]
    assert Balance.objects.get(pk=balance.pk).used == 4 + sum(q for _, q, _, _ in OLD_EVENTS)
    # A replay of an old id is a duplicate; other content under an old id a conflict.
    replay = usage_record_batch(tenant=tenant, payload={"events": [recorded]}, now=NOVEMBER)
    assert (replay.accepted, replay.duplicates) == (0, 1)
    with pytest.raises(Conflict):
        usage_record_batch(
            tenant=tenant,
            payload={"events": [event("old-nov-first", quantity=99,
                                      occurred_at="2026-11-01T00:00:00Z")]},
            now=NOVEMBER,
        )  # fmt: skip
    # The id sequence continues after the copied rows.
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event("new-2", occurred_at="2026-11-20T11:00:00Z")]},
        now=NOVEMBER,
    )
    assert UsageEvent.objects.get(client_event_id="new-2").pk > old_max_id
    # And the ledger is still append-only, on every partition.
    entry = LedgerEntry.objects.filter(tenant=tenant).order_by("created_at").first()
    assert entry is not None
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(reason="rewritten")
