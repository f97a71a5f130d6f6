"""Usage rollups: the events summed per tenant × channel × quarter hour in UTC.

Usage series (``metering.usage``) read these instead of the events, so a chart of a year
costs the same with ten events or ten million. Every path that records usage events adds
them here in the same transaction, after it has locked the balances it books on —
ingestion (``usage_record_batch``) and authorization commits
(``policies.services.authorization_settle``). The slot of an event depends on its instant
only, never on the tenant's time zone, so a change of zone leaves the rollups right.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import F

from metering import sql as metering_sql
from metering.models import UsageEvent, UsageRollup
from tenants.models import Tenant

SLOT = timedelta(minutes=15)
SLOT_SECONDS = 900
# Slots are counted from here (any whole quarter hour would do; the migration's
# backfill and ``usage_rollups_rebuild`` use the same origin).
SLOT_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)

SlotKey = tuple[int, datetime]  # (channel id, slot start)


def slot_of(moment: datetime) -> datetime:
    """The start of the quarter hour (UTC) holding ``moment``."""
    return datetime.fromtimestamp(int(moment.timestamp()) // SLOT_SECONDS * SLOT_SECONDS, UTC)


def slot_totals(events: Iterable[tuple[int, datetime, int]]) -> dict[SlotKey, tuple[int, int]]:
    """(channel id, instant, quantity) of events summed per slot: (units, event count)."""
    totals: dict[SlotKey, tuple[int, int]] = {}
    for channel_id, occurred_at, quantity in events:
        key = (channel_id, slot_of(occurred_at))
        units, count = totals.get(key, (0, 0))
        totals[key] = (units + quantity, count + 1)
    return totals


def usage_rollups_add(*, tenant: Tenant, totals: dict[SlotKey, tuple[int, int]]) -> None:
    """Add events just recorded to the tenant's rollups: ``totals`` as ``slot_totals``
    gives them. Runs inside the caller's transaction, the one that recorded the events, so
    the rollups and the events commit together or not at all.

    Concurrency: call it after locking the balances the events book on. A slot belongs to
    one channel and one period, hence to one balance, so two transactions adding to the
    same slot already hold its balance in turn: the slot's row lock never waits on a
    transaction that waits for another lock. One statement on PostgreSQL.
    """
    assert connection.in_atomic_block, "rollups move in the transaction of their events"
    if not totals:
        return
    keys = sorted(totals)
    if metering_sql.native():
        metering_sql.usage_rollups_add(
            tenant_id=tenant.pk,
            channel_ids=[channel_id for channel_id, _ in keys],
            slot_starts=[slot for _, slot in keys],
            quantities=[totals[key][0] for key in keys],
            event_counts=[totals[key][1] for key in keys],
        )
        return
    # Portable path (the embedded SQLite default, which serializes writers).
    for channel_id, slot in keys:
        units, count = totals[(channel_id, slot)]
        moved = UsageRollup.objects.filter(
            tenant=tenant, channel_id=channel_id, slot_start=slot
        ).update(quantity=F("quantity") + units, event_count=F("event_count") + count)
        if not moved:
            UsageRollup.objects.create(
                tenant=tenant,
                channel_id=channel_id,
                slot_start=slot,
                quantity=units,
                event_count=count,
            )


@transaction.atomic
def usage_rollups_rebuild(*, tenant: Tenant | None = None) -> int:
    """Rebuild the rollups of one tenant, or of every tenant, from the recorded events;
    returns the number of slots written. For events recorded before rollups existed (the
    migration that adds them does this once) or written around the services.

    Concurrency: on PostgreSQL, recording events waits while the rebuild runs (the events
    table is locked in share mode, after the recordings under way have committed), so the
    rebuilt rollups hold every event and none twice.
    """
    if metering_sql.native():
        metering_sql.usage_events_lock()
        return metering_sql.usage_rollups_rebuild(
            tenant_id=tenant.pk if tenant is not None else None, slot=SLOT, origin=SLOT_ORIGIN
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
            slot_start=slot,
            quantity=units,
            event_count=count,
        )
        for tenant_id, tenant_events in by_tenant.items()
        for (channel_id, slot), (units, count) in slot_totals(tenant_events).items()
    ]
    UsageRollup.objects.bulk_create(rows, batch_size=1000)
    return len(rows)
