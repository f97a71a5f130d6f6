"""Backup and restore as docs/OPERATIONS.md says to do them: `pg_dump -Fc` of a database
with usage, authorizations and a closed period, `pg_restore` into a new database, and the
restored ledger whole (every balance the sum of its entries) with every balance, charge
and row as in the original."""

from __future__ import annotations

import subprocess
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import pytest
from django.apps import apps
from django.db import connection

from metering.models import Balance, LedgerEntry
from metering.services.ingest import usage_record_batch
from policies.models import OverageCharge
from policies.services.authorization_settle import authorization_commit
from policies.services.authorize import authorization_create
from policies.services.close import periods_close_due
from tests.conftest import event
from tests.factories import TenantFactory
from tests.metering.test_closed_period_races import CLOSING_TIME, november_with_overage
from tests.ops import stack
from tests.policies.helpers import set_rule

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

NOVEMBER = datetime(2026, 11, 12, 9, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 2, 9, tzinfo=UTC)


def at(instant: datetime) -> str:
    return instant.isoformat()


def populate() -> None:
    # Alpha: 130 SMS against 100 included at 1.00 a unit; the close bills the 30.
    alpha = november_with_overage("backup-alpha")
    # Beta: e-mail usage, an authorization committed in part, another still held.
    beta = TenantFactory.create(slug="backup-beta", time_zone="Europe/Berlin")
    set_rule(beta, "email", included_units=500, now=datetime(2026, 11, 1, tzinfo=UTC))
    usage_record_batch(
        tenant=beta,
        payload={
            "events": [
                event(f"b{i}", channel="email", quantity=7, occurred_at=at(NOVEMBER))
                for i in range(40)
            ]
        },
        now=NOVEMBER,
    )
    held = authorization_create(tenant=beta, channel_code="email", quantity=50, now=NOVEMBER)
    authorization_commit(tenant=beta, public_id=held.public_id, quantity=30, now=NOVEMBER)
    assert periods_close_due(now=CLOSING_TIME) >= 1
    # December: open, with usage and a reservation not yet committed.
    usage_record_batch(
        tenant=alpha,
        payload={"events": [event("dec", quantity=12, occurred_at=at(DECEMBER))]},
        now=DECEMBER,
    )
    authorization_create(tenant=beta, channel_code="email", quantity=9, now=DECEMBER)


def dump_rows(cursor: Any, sql: str) -> list[tuple[Any, ...]]:
    cursor.execute(sql)
    return list(cursor.fetchall())


BALANCES = (
    f"SELECT id, tenant_id, channel_id, period_id, available, used, reserved, version"
    f" FROM {Balance._meta.db_table} ORDER BY id"
)
# The ledger's invariant: a balance is the sum of its entries, figure by figure.
UNBALANCED = f"""
    SELECT b.id FROM {Balance._meta.db_table} b
    LEFT JOIN {LedgerEntry._meta.db_table} e ON e.balance_id = b.id
    GROUP BY b.id, b.available, b.used, b.reserved
    HAVING b.available <> COALESCE(SUM(e.available_delta), 0)
        OR b.used <> COALESCE(SUM(e.used_delta), 0)
        OR b.reserved <> COALESCE(SUM(e.reserved_delta), 0)
"""
CHARGES = (
    f"SELECT id, tenant_id, period_id, units, amount, finalized_at"
    f" FROM {OverageCharge._meta.db_table} ORDER BY id"
)


def table_counts(cursor: Any) -> dict[str, int]:
    counts = {}
    for model in apps.get_models(include_auto_created=True):
        table = model._meta.db_table
        if not model._meta.managed or model._meta.proxy:
            continue
        cursor.execute(f'SELECT count(*) FROM "{table}"')
        counts[table] = cursor.fetchone()[0]
    return counts


def test_a_dump_restored_into_a_new_database_keeps_the_ledger_whole(tmp_path):
    populate()
    source = connection.settings_dict
    with connection.cursor() as cursor:
        balances = dump_rows(cursor, BALANCES)
        charges = dump_rows(cursor, CHARGES)
        counts = table_counts(cursor)
        assert dump_rows(cursor, UNBALANCED) == []
    assert len(balances) >= 4 and any(row[6] for row in balances)  # one reservation held
    assert any(row[5] is not None for row in charges)  # November's charge final

    server = ["-h", source["HOST"] or "127.0.0.1", "-p", str(source["PORT"] or 5432)]
    server += ["-U", source["USER"] or "postgres"]
    dump = tmp_path / "creditguard.dump"
    subprocess.run(
        ["pg_dump", "-Fc", *server, "-f", str(dump), source["NAME"]],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    restored = stack.database_create("restore")
    try:
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", "--single-transaction",
             *server, "-d", restored, str(dump)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        with closing(stack.connect(restored)) as copy, copy.cursor() as cursor:
            assert dump_rows(cursor, UNBALANCED) == []
            assert dump_rows(cursor, BALANCES) == balances
            assert dump_rows(cursor, CHARGES) == charges
            assert table_counts(cursor) == counts
    finally:
        stack.database_drop(restored)
