"""A year of usage for one tenant, loaded by SQL: the history the read benchmarks
(``bench.usage``, ``bench.portal``) time their pages against. Import after Django is
set up (``bench.common.setup_django`` or ``server_env`` and ``django.setup()``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction

from metering.models import (
    Balance,
    BillingPeriod,
    Channel,
    UsageEvent,
    UsageEventKey,
    UsageRollup,
)
from metering.services.ledger import balances_lock
from metering.services.periods import period_bounds, period_get_or_open
from metering.services.rollups import usage_rollups_rebuild
from tenants.models import Tenant

HISTORY_SLUG = "history"
CODES = ("email", "sms", "call")


@dataclass(frozen=True)
class Loaded:
    events: int
    rollups: int
    load_seconds: float | None  # None: loaded by an earlier run (``--reuse``)
    backfill_seconds: float | None


def history_periods(tenant: Tenant, now: datetime) -> list[BillingPeriod]:
    """The tenant's periods from now back over 380 days, opened if need be, newest first."""
    periods = []
    at = now
    while at > now - timedelta(days=380):
        periods.append(
            period_get_or_open(tenant=tenant, bounds=period_bounds(tenant=tenant, at=at))
        )
        at = periods[-1].starts_at - timedelta(days=1)
    return periods


def load_history(tenant: Tenant, count: int, now: datetime) -> Loaded:
    """``count`` events over the year up to ``now``, three channels, in the tenant's
    periods, by one ``INSERT … SELECT generate_series``; then their rollups, rebuilt by
    ``usage_rollups_rebuild`` as an existing installation would (timed: the backfill)."""
    history_periods(tenant, now)
    ids = {c.code: c.pk for c in Channel.objects.filter(code__in=CODES)}
    e, p, k = UsageEvent._meta, BillingPeriod._meta, UsageEventKey._meta
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # The events with their idempotency keys, as ingestion writes them.
        cursor.execute(
            f"""
    WITH events AS (
    INSERT INTO {e.db_table}
        (tenant_id, channel_id, period_id, client_event_id, quantity, occurred_at, metadata,
         content_hash, batch_id, received_at)
    SELECT %(tenant)s, (%(channels)s::bigint[])[1 + g.n %% 3], p.id, 'h' || g.n, 1 + g.n %% 5,
           g.at, '{{}}'::jsonb, repeat('0', 64), '00000000-0000-0000-0000-000000000000', g.at
    FROM (SELECT n, %(now)s - n * (%(span)s::interval / %(count)s) AS at
          FROM generate_series(1, %(count)s) AS n) AS g
    JOIN {p.db_table} AS p
      ON p.tenant_id = %(tenant)s AND g.at >= p.starts_at AND g.at < p.ends_at
    RETURNING tenant_id, client_event_id, content_hash, period_id, received_at)
    INSERT INTO {k.db_table} (tenant_id, client_event_id, content_hash, period_id, received_at)
    SELECT * FROM events
    """,
            {
                "tenant": tenant.pk,
                "channels": [ids[code] for code in CODES],
                "now": now,
                "span": "365 days",
                "count": count,
            },
        )
        loaded = cursor.rowcount
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    slots = usage_rollups_rebuild(tenant=tenant)
    backfill_seconds = time.perf_counter() - started
    analyze()
    return Loaded(loaded, slots, load_seconds, backfill_seconds)


def loaded_before(tenant: Tenant) -> Loaded:
    """What an earlier run loaded for ``tenant`` (``--reuse``)."""
    return Loaded(
        UsageEvent.objects.for_tenant(tenant).count(),
        UsageRollup.objects.for_tenant(tenant).count(),
        None,
        None,
    )


def balances_from_rollups(tenant: Tenant, periods: list[BillingPeriod], now: datetime) -> int:
    """Open the balance of each channel in each of ``periods`` (with its included grant,
    as ingestion would) and set its units used to the period's events, summed from the
    quarter-hour rollups: the balances the portal's pages read. Idempotent. Returns the
    balances."""
    channels = list(Channel.objects.filter(code__in=CODES))
    with transaction.atomic():
        balances_lock(tenant=tenant, pairs=[(c, x) for c in channels for x in periods], now=now)
    b, r, p = Balance._meta, UsageRollup._meta, BillingPeriod._meta
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
    UPDATE {b.db_table} AS b SET used = COALESCE((
        SELECT SUM(r.quantity) FROM {r.db_table} AS r, {p.db_table} AS p
        WHERE p.id = b.period_id AND r.tenant_id = b.tenant_id
          AND r.channel_id = b.channel_id AND r.slot_seconds = 900
          AND r.slot_start >= p.starts_at AND r.slot_start < p.ends_at), 0)
    WHERE b.tenant_id = %s AND b.period_id = ANY(%s)
    """,
            [tenant.pk, [x.pk for x in periods]],
        )
        updated = cursor.rowcount
    analyze()
    return updated


def analyze() -> None:
    with connection.cursor() as cursor:
        for model in (UsageEvent, UsageEventKey, UsageRollup, Balance):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
