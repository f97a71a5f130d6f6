"""Usage ingestion: validate a batch of events and record it atomically.

This is a hot path (tens of thousands of events a second over HTTP). The batch is
validated by lean code rather than a serializer per event
(``metering.services.usage_validation``), written with one statement on PostgreSQL
(the ids claimed in the keys table by ``INSERT … SELECT FROM unnest(…) ON CONFLICT DO
NOTHING RETURNING``, the claimed events inserted into the partitioned events table by
the same statement),
each affected balance row is locked and moved once per batch, and the events are added
to the usage rollups (one statement per batch) in the same transaction.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from creditguard.errors import Conflict
from creditguard.metrics import EVENTS_INGESTED
from metering import sql as metering_sql
from metering.models import BillingPeriod, Channel, UsageEvent, UsageEventKey
from metering.services.evaluation_request import request_evaluation
from metering.services.ledger import balances_lock, usage_apply
from metering.services.periods import periods_lock_for_booking
from metering.services.rollups import slot_totals, usage_rollups_add
from metering.services.usage_validation import (
    MAX_REPORTED_ERRORS,
    ValidEvent,
    batch_error,
    batch_refuse,
    usage_batch_validate,
)
from tenants.models import Tenant

logger = logging.getLogger(__name__)

DEADLOCK_RETRIES = 3

_T = TypeVar("_T")


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    batch_id: uuid.UUID
    touched: frozenset[tuple[int, int]]  # (channel_id, period_id) whose balances moved


def with_deadlock_retry(work: Callable[[], _T]) -> _T:
    """Run a transaction again when PostgreSQL picks it as a deadlock victim.

    Only an outermost transaction can be retried; inside a caller's transaction
    the error propagates to the caller.
    """
    if connection.in_atomic_block:
        return work()
    for attempt in range(DEADLOCK_RETRIES):
        try:
            return work()
        except OperationalError as exc:
            code = getattr(exc.__cause__, "pgcode", None)
            if code not in {"40P01", "40001"} or attempt == DEADLOCK_RETRIES - 1:
                raise
            logger.warning("ingestion retried after %s (attempt %d)", code, attempt + 1)
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def _insert_events(
    *,
    tenant: Tenant,
    events: list[ValidEvent],
    period_ids: dict[str, int],
    batch_id: uuid.UUID,
    now: datetime,
) -> set[str]:
    """Insert events that are new; return the client ids actually inserted."""
    if metering_sql.native():
        return metering_sql.usage_events_insert(
            tenant_id=tenant.pk,
            batch_id=batch_id,
            received_at=now,
            channel_ids=[e.channel.pk for e in events],
            period_ids=[period_ids[e.period.label] for e in events],
            client_event_ids=[e.client_event_id for e in events],
            quantities=[e.quantity for e in events],
            occurred_ats=[e.occurred_at for e in events],
            metadata_json=[e.metadata_json for e in events],
            content_hashes=[e.content_hash for e in events],
        )
    # Portable path (the embedded SQLite default, which serializes writers): claim the
    # keys not taken yet, then insert the events of those keys.
    taken = set(
        UsageEventKey.objects.for_tenant(tenant)
        .filter(client_event_id__in=[e.client_event_id for e in events])
        .values_list("client_event_id", flat=True)
    )
    claimed = [e for e in events if e.client_event_id not in taken]
    UsageEventKey.objects.bulk_create(
        [
            UsageEventKey(
                tenant=tenant,
                client_event_id=e.client_event_id,
                content_hash=e.content_hash,
                period_id=period_ids[e.period.label],
                received_at=now,
            )
            for e in claimed
        ],
        # No ignore_conflicts: a key taken meanwhile (only possible where writers run
        # concurrently) must fail the batch, not let its event in a second time.
        batch_size=500,
    )
    UsageEvent.objects.bulk_create(
        [
            UsageEvent(
                tenant=tenant,
                channel=e.channel,
                period_id=period_ids[e.period.label],
                client_event_id=e.client_event_id,
                quantity=e.quantity,
                occurred_at=e.occurred_at,
                metadata=e.metadata,
                content_hash=e.content_hash,
                batch_id=batch_id,
                received_at=now,
            )
            for e in claimed
        ],
        batch_size=500,
    )
    return {e.client_event_id for e in claimed}


def usage_event_create(
    *,
    tenant: Tenant,
    channel: Channel,
    period_id: int,
    client_event_id: str,
    quantity: int,
    occurred_at: datetime,
    metadata: dict[str, Any],
    content_hash: str,
    batch_id: uuid.UUID,
    received_at: datetime,
) -> UsageEvent:
    """Record one event whose id is new by construction (an authorization's commit): its
    key first, as ingestion claims keys, so that the id is never recorded twice (a taken
    id raises ``IntegrityError``). Balances and rollups are the caller's."""
    UsageEventKey.objects.create(
        tenant=tenant,
        client_event_id=client_event_id,
        content_hash=content_hash,
        period_id=period_id,
        received_at=received_at,
    )
    return UsageEvent.objects.create(
        tenant=tenant,
        channel=channel,
        period_id=period_id,
        client_event_id=client_event_id,
        quantity=quantity,
        occurred_at=occurred_at,
        metadata=metadata,
        content_hash=content_hash,
        batch_id=batch_id,
        received_at=received_at,
    )


def usage_record_batch(
    *, tenant: Tenant, payload: Any, now: datetime | None = None
) -> IngestResult:
    """Validate and record a batch of usage events, all or nothing.

    An id already recorded with the same content is a duplicate (not counted
    again); the same id with other content raises ``Conflict`` naming the ids,
    and nothing of the batch is recorded. Usage is booked even past a limit.

    Concurrency: the batch's periods are locked ``FOR SHARE`` first and their status
    checked under the lock, so a batch and the close of its period serialize (a batch
    that waited for a close answers 422 ``period_closed``, nothing recorded). Then the
    events' keys are claimed in id order with ``ON CONFLICT DO NOTHING``
    (a repeated id inserted by a concurrent batch waits for that batch and is then
    seen as already recorded); afterwards the touched balance rows are locked in id
    order and moved once each. A transaction holding a balance lock has finished its
    inserts, so lock waits cannot form a cycle.
    """
    now = now or timezone.now()
    channels = {channel.code: channel for channel in Channel.objects.all()}
    late: list[tuple[ValidEvent, dict[str, Any]]] = []
    events = usage_batch_validate(
        tenant=tenant, payload=payload, channels=channels, now=now, late=late
    )
    replayed = _replays_of_closed_periods(tenant=tenant, late=late)

    # Repeats inside the batch: same content → a duplicate; other content → conflict.
    unique: dict[str, ValidEvent] = {}
    duplicates = replayed
    conflicting: set[str] = set()
    for event in events:
        seen = unique.get(event.client_event_id)
        if seen is None:
            unique[event.client_event_id] = event
        elif seen.content_hash == event.content_hash:
            duplicates += 1
        else:
            conflicting.add(event.client_event_id)
    if conflicting:
        _raise_conflict(conflicting, events, within_batch=True)
    ordered = [unique[key] for key in sorted(unique)]
    if not ordered:  # only replays of closed periods' events
        EVENTS_INGESTED.labels(result="duplicate").inc(duplicates)
        return IngestResult(
            accepted=0, duplicates=duplicates, batch_id=uuid.uuid4(), touched=frozenset()
        )

    def record() -> IngestResult:
        with transaction.atomic():
            result = _record(
                tenant=tenant, events=ordered, body=events, duplicates=duplicates, now=now
            )
            if result.touched:
                request_evaluation()
            return result

    result = with_deadlock_retry(record)
    EVENTS_INGESTED.labels(result="accepted").inc(result.accepted)
    EVENTS_INGESTED.labels(result="duplicate").inc(result.duplicates)
    return result


def _replays_of_closed_periods(
    *, tenant: Tenant, late: list[tuple[ValidEvent, dict[str, Any]]]
) -> int:
    """The events of closed periods (``late``, each with its error) that repeat recorded
    ones with the same content: duplicates while their keys are kept, for
    ``USAGE_DEDUPE_RETENTION_HOURS`` after the close. Any other refuses the batch, 422
    ``period_closed``, as it always did."""
    if not late:
        return 0
    known = dict(
        UsageEventKey.objects.for_tenant(tenant)
        .filter(client_event_id__in=[event.client_event_id for event, _ in late])
        .values_list("client_event_id", "content_hash")
    )
    refused = [
        error for event, error in late if known.get(event.client_event_id) != event.content_hash
    ]
    if refused:
        batch_refuse(refused, closed_only=True)
    return len(late)


def _raise_conflict(ids: set[str], events: list[ValidEvent], *, within_batch: bool) -> None:
    """``Conflict`` naming the ids, and in ``errors`` the id of each event of the batch
    that carries one (``events`` in the body's order)."""
    listed = sorted(ids)
    where = "within this batch" if within_batch else "already recorded"
    raise Conflict(
        f"{len(listed)} event id(s) {where} with different content: "
        f"{', '.join(listed[:20])}{' …' if len(listed) > 20 else ''}. Nothing was recorded.",
        errors=[
            batch_error(index, "id", f"{event.client_event_id} has different content")
            for index, event in enumerate(events)
            if event.client_event_id in ids
        ][:MAX_REPORTED_ERRORS],
        extra={"conflicting_ids": listed},
    )


def _record(
    *,
    tenant: Tenant,
    events: list[ValidEvent],
    body: list[ValidEvent],
    duplicates: int,
    now: datetime,
) -> IngestResult:
    """Book ``events`` (the batch's distinct events, in id order; ``body``: all of them
    in the body's order, which a conflict names by position)."""
    labels = {event.period.label: event.period for event in events}
    # The periods are locked (shared) before anything is written and checked under the
    # lock: a close that is under way is waited for and then seen, so nothing is booked
    # into a period whose charge is final.
    periods = periods_lock_for_booking(tenant=tenant, bounds=list(labels.values()))
    closed = {
        label for label, period in periods.items() if period.status == BillingPeriod.Status.CLOSED
    }
    if closed:
        # A replay of events recorded before the close is answered as duplicates while
        # their keys are kept (USAGE_DEDUPE_RETENTION_HOURS after the close); anything
        # else for a closed period refuses the batch.
        late = [event for event in events if event.period.label in closed]
        known = dict(
            UsageEventKey.objects.for_tenant(tenant)
            .filter(client_event_id__in=[event.client_event_id for event in late])
            .values_list("client_event_id", "content_hash")
        )
        replayed = {
            e.client_event_id for e in late if known.get(e.client_event_id) == e.content_hash
        }
        refused = {e.period.label for e in late if e.client_event_id not in replayed}
        if refused:
            batch_refuse(
                [
                    batch_error(None, "events", f"the billing period {label} is closed")
                    for label in sorted(refused)
                ],
                closed_only=True,
            )
        events = [event for event in events if event.client_event_id not in replayed]
        duplicates += len(replayed)

    batch_id = uuid.uuid4()
    period_ids = {label: period.pk for label, period in periods.items()}
    inserted = _insert_events(
        tenant=tenant, events=events, period_ids=period_ids, batch_id=batch_id, now=now
    )
    if len(inserted) < len(events):
        repeated = {
            event.client_event_id: event
            for event in events
            if event.client_event_id not in inserted
        }
        stored = dict(
            UsageEventKey.objects.for_tenant(tenant)
            .filter(client_event_id__in=list(repeated))
            .values_list("client_event_id", "content_hash")
        )
        conflicting = {
            key for key, event in repeated.items() if stored.get(key) != event.content_hash
        }
        if conflicting:
            _raise_conflict(conflicting, body, within_batch=False)
        duplicates += len(repeated)

    units: dict[tuple[int, int], tuple[int, int]] = {}
    pairs: set[tuple[Channel, BillingPeriod]] = set()
    for event in events:
        if event.client_event_id in inserted:
            key = (event.channel.pk, period_ids[event.period.label])
            total, count = units.get(key, (0, 0))
            units[key] = (total + event.quantity, count + 1)
            pairs.add((event.channel, periods[event.period.label]))
    # Lock the balances only now, after the insert: a hot tenant's batches then hold
    # the balance rows just for the booking, not for the whole insert.
    balances = balances_lock(tenant=tenant, pairs=pairs, now=now)
    usage_apply(balances=balances, units_by_balance=units, batch_id=batch_id, now=now)
    # Under the balance locks, as every booking adds to the rollups (see usage_rollups_add).
    usage_rollups_add(
        tenant=tenant,
        totals=slot_totals(
            (event.channel.pk, event.occurred_at, event.quantity)
            for event in events
            if event.client_event_id in inserted
        ),
    )
    return IngestResult(
        accepted=len(inserted),
        duplicates=duplicates,
        batch_id=batch_id,
        touched=frozenset(units),
    )


def usage_event_keys_prune(*, now: datetime | None = None, chunk: int = 10_000) -> int:
    """Forget the idempotency keys of periods closed ``USAGE_DEDUPE_RETENTION_HOURS`` or
    more ago, ``chunk`` keys per transaction; how many. Keys of open periods are kept
    however old: while a period accepts events, a repeated id is always recognised; once
    it is closed its events are refused (422 ``period_closed``) whether known or not."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.USAGE_DEDUPE_RETENTION_HOURS)
    if metering_sql.native():
        periods = metering_sql.usage_event_key_periods_expired(cutoff=cutoff)
    else:
        periods = list(
            BillingPeriod.objects.filter(
                status=BillingPeriod.Status.CLOSED, closed_at__lte=cutoff
            ).values_list("pk", flat=True)
        )
    pruned = 0
    for period_id in periods:
        while True:
            with transaction.atomic():
                if metering_sql.native():
                    deleted = metering_sql.usage_event_keys_prune(period_id=period_id, chunk=chunk)
                else:
                    ids = UsageEventKey.objects.filter(period_id=period_id).values_list(
                        "pk", flat=True
                    )[:chunk]
                    deleted, _ = UsageEventKey.objects.filter(pk__in=list(ids)).delete()
            pruned += deleted
            if deleted < chunk:
                break
    return pruned
