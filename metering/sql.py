"""Metering's raw SQL, in one place: the statements the ORM cannot say as cheaply.

Metering owns the usage, balance, ledger, period and authorization tables, so every
statement that writes them lives here — the ingestion insert, the period locks, marking
balances evaluated, and the pieces of the one-statement authorization (a reservation on a
balance, its authorization row and its ``hold`` ledger entry), which
``policies.sql`` composes with the rule it reads. Table and column names come from the
models' ``_meta``; values, enum members included, are bound parameters, never SQL text.
``tests/metering/test_sql.py`` runs each statement on PostgreSQL.

Only PostgreSQL runs these statements. ``native()`` is the one place that says so: on
anything else — the embedded SQLite default — every caller takes its ORM path
(SQLite serializes writers, so the row locks these statements take are not needed
there). The tests force that path on PostgreSQL to cover it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache

from django.db import connection
from django.db.models import Model

from creditguard.db_router import read_connection
from metering.models import (
    Authorization,
    Balance,
    BillingPeriod,
    LedgerEntry,
    UsageEvent,
    UsageEventKey,
    UsageRollup,
)


def native() -> bool:
    """True where this module's statements run (PostgreSQL); False sends every caller
    to its ORM path. The one vendor check of the write paths."""
    return connection.vendor == "postgresql"


class Names:
    """A model's table (``db_table``) and its fields' columns as attributes:
    ``Names(UsageEvent).tenant`` is ``tenant_id``."""

    def __init__(self, model: type[Model]) -> None:
        self.db_table = model._meta.db_table
        self._model = model

    def __getattr__(self, field: str) -> str:
        return str(self._model._meta.get_field(field).column)  # type: ignore[union-attr]


# Fixed values bound as parameters of the authorization statement's metering parts.
CONSTANTS: dict[str, str] = {
    "period_open": BillingPeriod.Status.OPEN,
    "entry_hold": LedgerEntry.Kind.HOLD,
    "status_held": Authorization.Status.HELD,
}


# ---------------------------------------------------------------- ingestion


@cache
def _usage_events_insert() -> str:
    e, k = Names(UsageEvent), Names(UsageEventKey)
    return f"""
WITH u AS (
    SELECT *
    FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::bigint[], %s::timestamptz[],
                %s::text[], %s::text[])
         AS u(channel_id, period_id, client_event_id, quantity, occurred_at, metadata,
              content_hash)
), claimed AS (
    INSERT INTO {k.db_table}
        ({k.tenant}, {k.client_event_id}, {k.content_hash}, {k.period}, {k.received_at})
    SELECT %s, u.client_event_id, u.content_hash, u.period_id, %s FROM u
    ON CONFLICT ({k.tenant}, {k.client_event_id}) DO NOTHING
    RETURNING {k.client_event_id}
)
INSERT INTO {e.db_table}
    ({e.tenant}, {e.channel}, {e.period}, {e.client_event_id}, {e.quantity}, {e.occurred_at},
     {e.metadata}, {e.content_hash}, {e.batch_id}, {e.received_at})
SELECT %s, u.channel_id, u.period_id, u.client_event_id, u.quantity, u.occurred_at,
       u.metadata::jsonb, u.content_hash, %s::uuid, %s
FROM u JOIN claimed ON claimed.{k.client_event_id} = u.client_event_id
RETURNING {e.client_event_id}
"""


def usage_events_insert(
    *,
    tenant_id: int,
    batch_id: uuid.UUID,
    received_at: datetime,
    channel_ids: Sequence[int],
    period_ids: Sequence[int],
    client_event_ids: Sequence[str],
    quantities: Sequence[int],
    occurred_ats: Sequence[datetime],
    metadata_json: Sequence[str],
    content_hashes: Sequence[str],
) -> set[str]:
    """Insert a batch of events (one row per index of the sequences, distinct ids in id
    order) in one statement: claim their keys in the keys table, ``ON CONFLICT (tenant,
    client_event_id) DO NOTHING``, then insert the events whose key was claimed (the
    events table is partitioned and has no unique index on the id); the client ids
    inserted. A repeated id claimed by a concurrent transaction waits for it to end."""
    with connection.cursor() as cursor:
        cursor.execute(
            _usage_events_insert(),
            [
                list(channel_ids),
                list(period_ids),
                list(client_event_ids),
                list(quantities),
                list(occurred_ats),
                list(metadata_json),
                list(content_hashes),
                tenant_id,
                received_at,
                tenant_id,
                str(batch_id),
                received_at,
            ],
        )
        return {row[0] for row in cursor.fetchall()}


# ---------------------------------------------------------------- usage rollups


@cache
def _usage_rollups_add() -> str:
    r = Names(UsageRollup)
    return f"""
INSERT INTO {r.db_table} AS r
    ({r.tenant}, {r.channel}, {r.slot_seconds}, {r.slot_start}, {r.quantity}, {r.event_count})
SELECT %s, u.channel_id, u.slot_seconds, u.slot_start, u.quantity, u.event_count
FROM unnest(%s::bigint[], %s::int[], %s::timestamptz[], %s::bigint[], %s::bigint[])
     AS u(channel_id, slot_seconds, slot_start, quantity, event_count)
ORDER BY u.channel_id, u.slot_seconds, u.slot_start
ON CONFLICT ({r.tenant}, {r.channel}, {r.slot_seconds}, {r.slot_start}) DO UPDATE
SET {r.quantity} = r.{r.quantity} + EXCLUDED.{r.quantity},
    {r.event_count} = r.{r.event_count} + EXCLUDED.{r.event_count}
"""


def usage_rollups_add(
    *,
    tenant_id: int,
    channel_ids: Sequence[int],
    slot_seconds: Sequence[int],
    slot_starts: Sequence[datetime],
    quantities: Sequence[int],
    event_counts: Sequence[int],
) -> None:
    """Add to the tenant's rollups (one row per index of the sequences, each key once),
    creating the slots not there yet; one statement, rows in key order."""
    with connection.cursor() as cursor:
        cursor.execute(
            _usage_rollups_add(),
            [
                tenant_id,
                list(channel_ids),
                list(slot_seconds),
                list(slot_starts),
                list(quantities),
                list(event_counts),
            ],
        )


@cache
def _usage_rollups_drop() -> str:
    r = Names(UsageRollup)
    return f"""
DELETE FROM {r.db_table}
WHERE (%(tenant)s::bigint IS NULL OR {r.tenant} = %(tenant)s)
  AND EXISTS (SELECT 1 FROM unnest(%(lows)s::timestamptz[], %(highs)s::timestamptz[]) AS m(lo, hi)
              WHERE {r.slot_start} >= m.lo AND {r.slot_start} < m.hi)
"""


@cache
def _usage_rollups_rebuild() -> str:
    r, e = Names(UsageRollup), Names(UsageEvent)
    return f"""
INSERT INTO {r.db_table}
    ({r.tenant}, {r.channel}, {r.slot_seconds}, {r.slot_start}, {r.quantity}, {r.event_count})
SELECT {e.tenant}, {e.channel}, %(size)s,
       date_bin(make_interval(secs => %(size)s), {e.occurred_at}, %(origin)s),
       sum({e.quantity}), count(*)
FROM {e.db_table}
WHERE %(tenant)s::bigint IS NULL OR {e.tenant} = %(tenant)s
GROUP BY 1, 2, 4
"""


def usage_rollups_rebuild(
    *,
    tenant_id: int | None,
    sizes: Sequence[int],
    origin: datetime,
    spans: Sequence[tuple[datetime, datetime]],
) -> int:
    """Replace the rollups of one tenant (or of all, ``None``) whose slots start in one of
    ``spans`` ([from, to) each, which must hold every event of the table) by the sums of
    their events, in slots of each of ``sizes`` seconds counted from ``origin`` (slots of
    at most a day from a UTC midnight: each lies within one UTC month); the number of rows
    written. Rollups outside the spans are kept. The caller keeps events from being
    recorded meanwhile."""
    written = 0
    with connection.cursor() as cursor:
        # Separate statements: an INSERT in the statement of the DELETE would still meet
        # the deleted rows in the unique index.
        cursor.execute(
            _usage_rollups_drop(),
            {
                "tenant": tenant_id,
                "lows": [low for low, _ in spans],
                "highs": [high for _, high in spans],
            },
        )
        for size in sizes:
            cursor.execute(
                _usage_rollups_rebuild(), {"tenant": tenant_id, "size": size, "origin": origin}
            )
            written += int(cursor.rowcount)
    return written


@cache
def _usage_rollups_read(events: bool = True) -> str:
    # LATERAL with OFFSET 0 (which keeps the planner from flattening it into a join): one
    # index range scan per span and window. As a plain join the planner, which cannot see
    # how narrow the spans are, may scan every event of the tenant. Without windows of
    # events (``events``), the rollups' half alone.
    r, e = Names(UsageRollup), Names(UsageEvent)
    rollups = f"""
SELECT s.bucket, u.channel_id, sum(u.quantity)
FROM unnest(%(slot_sizes)s::int[], %(slot_from)s::timestamptz[], %(slot_to)s::timestamptz[],
            %(slot_buckets)s::int[]) AS s(size, lo, hi, bucket)
CROSS JOIN LATERAL (
    SELECT {r.channel} AS channel_id, {r.quantity} AS quantity FROM {r.db_table}
    WHERE {r.tenant} = %(tenant)s AND {r.channel} = ANY(%(channels)s::bigint[])
      AND {r.slot_seconds} = s.size AND {r.slot_start} >= s.lo AND {r.slot_start} < s.hi
    OFFSET 0
) AS u
GROUP BY 1, 2
"""
    if not events:
        return rollups
    return (
        rollups
        + f"""UNION ALL
SELECT w.bucket, v.channel_id, sum(v.quantity)
FROM unnest(%(raw_from)s::timestamptz[], %(raw_to)s::timestamptz[], %(raw_buckets)s::int[])
     AS w(lo, hi, bucket)
CROSS JOIN LATERAL (
    SELECT {e.channel} AS channel_id, {e.quantity} AS quantity FROM {e.db_table}
    WHERE {e.tenant} = %(tenant)s AND {e.channel} = ANY(%(channels)s::bigint[])
      AND {e.occurred_at} >= w.lo AND {e.occurred_at} < w.hi
    OFFSET 0
) AS v
GROUP BY 1, 2
"""
    )


def usage_rollups_read(
    *,
    tenant_id: int,
    channel_ids: Sequence[int],
    slots: Sequence[tuple[int, datetime, datetime, int]],
    raw: Sequence[tuple[datetime, datetime, int]],
) -> list[tuple[int, int, int]]:
    """Units per (bucket, channel): the rollups of ``slots`` (size, from, to, bucket: the
    slots of that size starting in [from, to) count towards that bucket) and the events of
    ``raw`` (from, to, bucket); a bucket may appear twice. One statement, on the router's
    connection (a read replica for the portal's usage pages)."""
    with read_connection(UsageRollup).cursor() as cursor:
        cursor.execute(
            _usage_rollups_read(events=bool(raw)),
            {
                "tenant": tenant_id,
                "channels": list(channel_ids),
                "slot_sizes": [size for size, _, _, _ in slots],
                "slot_from": [low for _, low, _, _ in slots],
                "slot_to": [high for _, _, high, _ in slots],
                "slot_buckets": [bucket for _, _, _, bucket in slots],
                "raw_from": [low for low, _, _ in raw],
                "raw_to": [high for _, high, _ in raw],
                "raw_buckets": [bucket for _, _, bucket in raw],
            },
        )
        return [(int(b), int(c), int(q)) for b, c, q in cursor.fetchall()]


@cache
def _usage_events_lock() -> str:
    return f"LOCK TABLE {Names(UsageEvent).db_table} IN SHARE MODE"


def usage_events_lock() -> None:
    """Keep every other transaction from recording events until this one ends (it waits
    for those recording now): what a rebuild of the rollups needs to see them all."""
    with connection.cursor() as cursor:
        cursor.execute(_usage_events_lock())


# ---------------------------------------------------------------- period locks
# Bookings take their period row FOR SHARE (metering.services.periods). Django's
# select_for_update offers only the exclusive modes, which would serialize a tenant's
# bookings with one another; shared locks do not block each other.


@cache
def _periods_for_booking() -> str:
    p = Names(BillingPeriod)
    return f"""
SELECT * FROM {p.db_table}
WHERE {p.tenant} = %s AND {p.label} = ANY(%s)
ORDER BY {p.starts_at}
FOR SHARE
"""


@cache
def _period_of_balance() -> str:
    p, b = Names(BillingPeriod), Names(Balance)
    return f"""
SELECT * FROM {p.db_table}
WHERE {p.id} = (SELECT {b.period} FROM {b.db_table} WHERE {b.id} = %s)
FOR SHARE
"""


def periods_lock_shared(*, tenant_id: int, labels: Sequence[str]) -> list[BillingPeriod]:
    """The tenant's periods of these labels, in start order, each locked ``FOR SHARE``
    until the transaction ends. One indexed statement."""
    return list(BillingPeriod.objects.raw(_periods_for_booking(), [tenant_id, list(labels)]))


def period_of_balance_lock_shared(*, balance_id: int) -> BillingPeriod:
    """The period of a balance, locked ``FOR SHARE``. One indexed statement."""
    return BillingPeriod.objects.raw(_period_of_balance(), [balance_id])[0]


# ---------------------------------------------------------------- evaluation marks


@cache
def _balances_mark_evaluated() -> str:
    b = Names(Balance)
    return f"""
UPDATE {b.db_table} AS b SET {b.evaluated_version} = v.version
FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, version)
WHERE b.{b.id} = v.id AND b.{b.evaluated_version} < v.version
"""


def balances_mark_evaluated(*, versions: dict[int, int]) -> int:
    """Record for each balance id the version it was evaluated at, unless a later one
    is recorded already; one statement. Returns how many balances it marked."""
    if not versions:
        return 0
    ids = sorted(versions)  # id order: concurrent markers lock rows in the same order
    with connection.cursor() as cursor:
        cursor.execute(_balances_mark_evaluated(), [ids, [versions[pk] for pk in ids]])
        return int(cursor.rowcount)


# ---------------------------------------------------------------- authorization parts
# Data-modifying CTE bodies for ``policies.sql``'s one-statement authorization: metering
# owns the balance, authorization and ledger rows, so the writes are spelled here, moving
# the balance as ``metering.services.ledger`` does (``version + 1``, ``updated_at``) and
# appending the entry that explains the move. Named parameters: ``%(tenant)s``,
# ``%(now)s``, ``%(quantity)s``, ``%(public_id)s``, ``%(key)s`` and the ``CONSTANTS``.


@cache
def current_period_locked_cte() -> str:
    """The tenant's open period containing ``now``: ``id``, locked ``FOR SHARE`` as every
    booking does. No row when it is closed."""
    p = Names(BillingPeriod)
    return f"""
    SELECT {p.id} AS id FROM {p.db_table}
    WHERE {p.tenant} = %(tenant)s AND {p.starts_at} <= %(now)s AND {p.ends_at} > %(now)s
      AND {p.status} = %(period_open)s
    FOR SHARE"""


def balance_reserve_cte(*, channel_id: str, period_id: str, allowed: str) -> str:
    """Reserve ``quantity`` on the tenant's balance of ``channel_id`` × ``period_id``
    (SQL expressions) when ``allowed`` holds (a condition on the balance ``b``): a
    conditional UPDATE, which takes the row lock and, after waiting for a holder,
    re-checks the condition on the newest version. Returns ``id, channel_id, available,
    used, reserved`` after the move; no row when not allowed."""
    b = Names(Balance)
    return f"""
    UPDATE {b.db_table} AS b
    SET {b.reserved} = b.{b.reserved} + %(quantity)s, {b.version} = b.{b.version} + 1,
        {b.updated_at} = %(now)s
    WHERE b.{b.tenant} = %(tenant)s
      AND b.{b.channel} = {channel_id}
      AND b.{b.period} = {period_id}
      AND ({allowed})
    RETURNING b.{b.id} AS id, b.{b.channel} AS channel_id, b.{b.available} AS available,
              b.{b.used} AS used, b.{b.reserved} AS reserved"""


def balance_read_cte(*, channel_id: str, period_id: str) -> str:
    """The tenant's balance of ``channel_id`` × ``period_id``, as ``balance_reserve_cte``
    returns it (the snapshot of the statement, unlocked)."""
    b = Names(Balance)
    return f"""
    SELECT b.{b.id} AS id, b.{b.channel} AS channel_id, b.{b.available} AS available,
           b.{b.used} AS used, b.{b.reserved} AS reserved
    FROM {b.db_table} AS b
    WHERE b.{b.tenant} = %(tenant)s
      AND b.{b.channel} = {channel_id}
      AND b.{b.period} = {period_id}"""


@cache
def _authorization_insert() -> str:
    a = Names(Authorization)
    return f"""
    INSERT INTO {a.db_table}
        ({a.public_id}, {a.tenant}, {a.channel}, {a.balance}, {a.quantity}, {a.decision},
         {a.reason}, {a.status}, {a.idempotency_key}, {a.window_counts}, {a.remaining_after},
         {a.overage_after}, {a.created_at}, {a.expires_at})
    SELECT %(public_id)s, %(tenant)s, channel_id, id, %(quantity)s, decision, reason, status,
           %(key)s, '[]'::jsonb, remaining, overage, %(now)s, expires_at
    FROM {{source}}
    RETURNING {a.id} AS id, {a.balance} AS balance_id, {a.status} AS status"""


def authorization_insert_cte(*, source: str) -> str:
    """Insert the authorization decided in ``source`` (columns ``id`` — the balance —,
    ``channel_id, decision, reason, status, remaining, overage, expires_at``);
    returns ``id, balance_id, status``."""
    return _authorization_insert().replace("{source}", source)


@cache
def _hold_entry_insert() -> str:
    entry = Names(LedgerEntry)
    return f"""
    INSERT INTO {entry.db_table}
        ({entry.tenant}, {entry.balance}, {entry.kind}, {entry.available_delta},
         {entry.used_delta}, {entry.reserved_delta}, {entry.draws}, {entry.event_count},
         {entry.reason}, {entry.created_at}, {entry.authorization})
    SELECT %(tenant)s, balance_id, %(entry_hold)s, 0, 0, %(quantity)s, '[]'::jsonb, 0, '',
           %(now)s, id
    FROM {{source}}
    WHERE status = %(status_held)s"""


def hold_entry_insert_cte(*, source: str) -> str:
    """The ``hold`` ledger entry of each held authorization in ``source`` (columns
    ``id, balance_id, status``), explaining the move of ``balance_reserve_cte``."""
    return _hold_entry_insert().replace("{source}", source)


# ---------------------------------------------------------------- monthly partitions
# Maintenance, not hot paths (metering.services.partitions decides; these say it). Names
# of partitions are built from the models' tables and UTC months only; bounds are written
# as literals because DDL takes no parameters.


def _bound(at: datetime) -> str:
    return f"'{at:%Y-%m-%d %H:%M:%S}+00'"


def partitions_of(tables: Sequence[str]) -> list[tuple[str, str, int]]:
    """The partitions of ``tables`` as (table, partition, the planner's estimate of its
    rows), one catalog query."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.relname, c.relname, GREATEST(c.reltuples, 0)::bigint FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE i.inhparent = ANY(%s::regclass[]) ORDER BY 1, 2",
            [list(tables)],
        )
        return [(str(table), str(name), int(rows)) for table, name, rows in cursor.fetchall()]


def partition_rows(name: str) -> int:
    """The rows of one partition, counted."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{name}"')
        return int(cursor.fetchone()[0])


def partition_months(name: str, column: str) -> list[datetime]:
    """The UTC months (their first instants) of the rows of ``name``, read row by row: for
    the default partition, which holds few rows."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', {column} AT TIME ZONE 'UTC') FROM {name}"
        )
        return [row[0].replace(tzinfo=UTC) for row in cursor.fetchall()]


def partition_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return bool(cursor.fetchone()[0])


def partition_create(
    *, table: str, column: str, name: str, default: str, low: datetime, high: datetime
) -> int:
    """Create the partition ``name`` of ``table`` for [low, high); the rows moved into it
    from the ``default`` partition (PostgreSQL refuses a new partition while the default
    holds rows of its range: they go into a standalone table first, which is then
    attached, building its indexes, foreign keys and triggers). A move is no change of
    the ledger: the default's append-only trigger is off for that one statement, inside
    the caller's transaction."""
    within = f"{column} >= {_bound(low)} AND {column} < {_bound(high)}"
    bounds = f"FOR VALUES FROM ({_bound(low)}) TO ({_bound(high)})"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {default} WHERE {within} LIMIT 1")
        if cursor.fetchone() is None:
            cursor.execute(f"CREATE TABLE {name} PARTITION OF {table} {bounds}")
            return 0
        cursor.execute(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)")
        # ALTER TABLE refuses a table with deferred foreign-key checks pending (rows
        # written earlier in this transaction): check them now, then defer again.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        cursor.execute(f"ALTER TABLE {default} DISABLE TRIGGER USER")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {default} WHERE {within} RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        )
        moved = int(cursor.rowcount)
        cursor.execute(f"ALTER TABLE {default} ENABLE TRIGGER USER")
        cursor.execute(f"ALTER TABLE {table} ATTACH PARTITION {name} {bounds}")
        return moved


def periods_open_overlapping(*, low: datetime, high: datetime) -> bool:
    """Whether any tenant's billing period meeting [low, high) is not closed."""
    p = Names(BillingPeriod)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {p.db_table} WHERE {p.starts_at} < %s "
            f"AND {p.ends_at} > %s AND {p.status} <> %s)",
            [high, low, BillingPeriod.Status.CLOSED],
        )
        return bool(cursor.fetchone()[0])


def ledger_partition_touches_open_period(name: str) -> bool:
    """Whether an entry of the ledger partition ``name`` is on a balance of a period that
    is not closed (entries are partitioned by when they were written, which is not
    always within their period: a grant ahead of its month)."""
    entry, b, p = Names(LedgerEntry), Names(Balance), Names(BillingPeriod)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {name} WHERE {entry.balance} IN ("
            f"SELECT b.id FROM {b.db_table} AS b JOIN {p.db_table} AS p ON p.id = b.{b.period}"
            f" WHERE p.{p.status} <> %s))",
            [BillingPeriod.Status.CLOSED],
        )
        return bool(cursor.fetchone()[0])


# Any number, the same in every process: the key of the transaction-scoped advisory lock
# that serializes partition maintenance (ensure and archive), so two runs never both find
# a month missing and both create it.
PARTITIONS_ADVISORY_KEY = 0x6367_7061_7274  # "cgpart"

# The ledger's append-only trigger (metering migration 0004): a partition inherits it
# from the parent while attached and loses it when detached.
LEDGER_APPEND_ONLY_TRIGGER = "metering_ledgerentry_append_only"


def partitions_maintenance_begin(*, lock_timeout_seconds: float) -> None:
    """Inside the caller's transaction: wait for any other partition maintenance to end
    (``pg_advisory_xact_lock``, released at commit or rollback, so it also holds behind
    PgBouncer's transaction pooling), then give up on any table lock not granted within
    ``lock_timeout_seconds`` (``SET LOCAL lock_timeout``; 0 waits for ever). CREATE
    TABLE ... PARTITION OF, ATTACH and DETACH take ACCESS EXCLUSIVE on the parent and the
    default partition: queued behind a long reader they would stop ingestion behind
    them; with the timeout the maintenance fails instead (SQLSTATE 55P03), rolls back
    whole and is retried by its next run."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITIONS_ADVISORY_KEY])
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, true)",
            [f"{max(0, round(lock_timeout_seconds * 1000))}ms"],
        )


def partition_archive(*, table: str, name: str, schema: str, append_only: bool = False) -> None:
    """Detach the partition ``name`` of ``table`` and move it into ``schema``;
    ``append_only``: give the detached table the ledger's append-only trigger again (a
    detached partition keeps none of its parent's triggers).

    Not ``DETACH ... CONCURRENTLY`` (which would take only SHARE UPDATE EXCLUSIVE):
    PostgreSQL refuses it while the table has a DEFAULT partition, and it cannot run in a
    transaction block, so both tables' months could not go together."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        cursor.execute(f"ALTER TABLE {table} DETACH PARTITION {name}")
        cursor.execute(f"ALTER TABLE {name} SET SCHEMA {schema}")
        if append_only:
            cursor.execute(
                f"CREATE TRIGGER {LEDGER_APPEND_ONLY_TRIGGER} BEFORE UPDATE OR DELETE "
                f"ON {schema}.{name} FOR EACH ROW "
                f"EXECUTE FUNCTION {LEDGER_APPEND_ONLY_TRIGGER}()"
            )


# ---------------------------------------------------------------- idempotency keys


@cache
def _usage_event_key_periods_expired() -> str:
    k, p = Names(UsageEventKey), Names(BillingPeriod)
    return f"""
SELECT p.id FROM {p.db_table} AS p
WHERE p.{p.status} = %(closed)s AND p.{p.closed_at} <= %(cutoff)s
  AND EXISTS (SELECT 1 FROM {k.db_table} AS k WHERE k.{k.period} = p.id)
ORDER BY p.id
"""


def usage_event_key_periods_expired(*, cutoff: datetime) -> list[int]:
    """The periods closed at or before ``cutoff`` that still have idempotency keys."""
    with connection.cursor() as cursor:
        cursor.execute(
            _usage_event_key_periods_expired(),
            {"closed": BillingPeriod.Status.CLOSED, "cutoff": cutoff},
        )
        return [int(row[0]) for row in cursor.fetchall()]


@cache
def _usage_event_keys_prune() -> str:
    k = Names(UsageEventKey)
    return f"""
DELETE FROM {k.db_table} WHERE id IN (
    SELECT id FROM {k.db_table} WHERE {k.period} = %(period)s LIMIT %(chunk)s)
"""


def usage_event_keys_prune(*, period_id: int, chunk: int) -> int:
    """Delete up to ``chunk`` idempotency keys of one period; how many."""
    with connection.cursor() as cursor:
        cursor.execute(_usage_event_keys_prune(), {"period": period_id, "chunk": chunk})
        return int(cursor.rowcount)
