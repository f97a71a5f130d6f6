"""Usage rollups: the events summed per tenant × channel × UTC quarter hour, hour and day.

Usage series (``metering.usage``) read these instead of the events, so a chart of a year
costs the same with ten events or ten million. Every path that records usage events adds
them here in the same transaction, after it has locked the balances it books on —
ingestion (``usage_record_batch``) and authorization commits
(``policies.services.authorization_settle``). The slot of an event depends on its instant
only, never on the tenant's time zone, so a change of zone leaves the rollups right.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import F

from metering import sql as metering_sql
from metering.models import UsageEvent, UsageRollup
from metering.services.partitions import month_add, usage_event_months_attached
from tenants.models import Tenant

SLOT_SECONDS = 900  # the finest slot: every zone's offset since 2000 is whole quarter hours
# Each event counts once in a slot of every size; a read takes the largest slots that fit.
SLOT_SIZES = (86400, 3600, SLOT_SECONDS)
# Slots are counted from here (a UTC midnight, so day slots are UTC days; the migration's
# backfill and ``usage_rollups_rebuild`` use the same origin).
SLOT_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)

SlotKey = tuple[int, int, datetime]  # (channel id, slot seconds, slot start)


def slot_floor(moment: datetime, seconds: int = SLOT_SECONDS) -> datetime:
    """The start of the slot of ``seconds`` (UTC) holding ``moment``."""
    return datetime.fromtimestamp(moment.timestamp() // seconds * seconds, UTC)


def slot_totals(events: Iterable[tuple[int, datetime, int]]) -> dict[SlotKey, tuple[int, int]]:
    """(channel id, instant, quantity) of events summed per slot of every size:
    (units, event count). Events are summed per quarter hour first, so a batch costs one
    division per event, whatever the number of sizes."""
    quarters: dict[tuple[int, int], tuple[int, int]] = {}
    for channel_id, occurred_at, quantity in events:
        in_quarter = (channel_id, int(occurred_at.timestamp()) // SLOT_SECONDS)
        units, count = quarters.get(in_quarter, (0, 0))
        quarters[in_quarter] = (units + quantity, count + 1)
    totals: dict[SlotKey, tuple[int, int]] = {}
    for (channel_id, quarter), (units, count) in quarters.items():
        stamp = quarter * SLOT_SECONDS
        for size in SLOT_SIZES:
            key = (channel_id, size, datetime.fromtimestamp(stamp // size * size, UTC))
            total_units, total_count = totals.get(key, (0, 0))
            totals[key] = (total_units + units, total_count + count)
    return totals


def usage_rollups_add(*, tenant: Tenant, totals: dict[SlotKey, tuple[int, int]]) -> None:
    """Add events just recorded to the tenant's rollups: ``totals`` as ``slot_totals``
    gives them. Runs inside the caller's transaction, the one that recorded the events, so
    the rollups and the events commit together or not at all.

    Concurrency: call it last, after locking the balances the events book on. Slot rows
    are locked in key order, and a transaction holding them waits for nothing more but its
    commit, so waits on them cannot form a cycle. Batches adding to the same slots mostly
    hold the same balance already (a quarter hour and an hour lie in one period), so the
    slots add no waiting of their own. One statement on PostgreSQL.
    """
    assert connection.in_atomic_block, "rollups move in the transaction of their events"
    if not totals:
        return
    keys = sorted(totals)
    if metering_sql.native():
        metering_sql.usage_rollups_add(
            tenant_id=tenant.pk,
            channel_ids=[channel_id for channel_id, _, _ in keys],
            slot_seconds=[size for _, size, _ in keys],
            slot_starts=[slot for _, _, slot in keys],
            quantities=[totals[key][0] for key in keys],
            event_counts=[totals[key][1] for key in keys],
        )
        return
    # Portable path (the embedded SQLite default, which serializes writers).
    for channel_id, size, slot in keys:
        units, count = totals[(channel_id, size, slot)]
        moved = UsageRollup.objects.filter(
            tenant=tenant, channel_id=channel_id, slot_seconds=size, slot_start=slot
        ).update(quantity=F("quantity") + units, event_count=F("event_count") + count)
        if not moved:
            UsageRollup.objects.create(
                tenant=tenant,
                channel_id=channel_id,
                slot_seconds=size,
                slot_start=slot,
                quantity=units,
                event_count=count,
            )


@transaction.atomic
def usage_rollups_rebuild(*, tenant: Tenant | None = None) -> int:
    """Rebuild the rollups of one tenant, or of every tenant, from the recorded events;
    returns the number of slots written. For events recorded before rollups existed (the
    migration that adds them does this once) or written around the services.

    Only the months whose events are all still attached are rebuilt
    (``usage_event_months_attached``): the rollups of a month whose events retention
    archived (``USAGE_RETENTION_MONTHS``) are the history that outlives them, and are
    kept as they are.

    Concurrency: on PostgreSQL, recording events waits while the rebuild runs (the events
    table is locked in share mode, after the recordings under way have committed), so the
    rebuilt rollups hold every event and none twice.
    """
    if metering_sql.native():
        metering_sql.usage_events_lock()
        months = usage_event_months_attached() or []
        return metering_sql.usage_rollups_rebuild(
            tenant_id=tenant.pk if tenant is not None else None,
            sizes=SLOT_SIZES,
            origin=SLOT_ORIGIN,
            spans=[(month, month_add(month, 1)) for month in months],
        )
    rollups = UsageRollup.objects.all()
    events = UsageEvent.objects.all()
    if tenant is not None:
        rollups, events = rollups.filter(tenant=tenant), events.filter(tenant=tenant)
    rollups.delete()
    by_tenant: dict[int, list[tuple[int, datetime, int]]] = {}
    for tenant_id, channel_id, occurred_at, quantity in events.values_list(
        "tenant_id", "channel_id", "occurred_at", "quantity"
    ).iterator():
        by_tenant.setdefault(tenant_id, []).append((channel_id, occurred_at, quantity))
    rows = [
        UsageRollup(
            tenant_id=tenant_id,
            channel_id=channel_id,
            slot_seconds=size,
            slot_start=slot,
            quantity=units,
            event_count=count,
        )
        for tenant_id, tenant_events in by_tenant.items()
        for (channel_id, size, slot), (units, count) in slot_totals(tenant_events).items()
    ]
    UsageRollup.objects.bulk_create(rows, batch_size=1000)
    return len(rows)
