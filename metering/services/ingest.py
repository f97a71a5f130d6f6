"""Usage ingestion: validate a batch of events and record it atomically.

This is a hot path (tens of thousands of events a second over HTTP). The batch is
validated by lean code rather than a serializer per event, written with one
multi-row ``INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING RETURNING`` on
PostgreSQL, and each affected balance row is locked and moved once per batch.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from creditguard.api.fields import instant_parse
from creditguard.errors import Conflict, InvalidInput, Unprocessable
from metering import sql as metering_sql
from metering.models import BillingPeriod, Channel, UsageEvent
from metering.services.evaluation_request import request_evaluation
from metering.services.ledger import balances_lock, usage_apply
from metering.services.periods import (
    PeriodBounds,
    period_accepts_events,
    period_bounds,
    periods_lock_for_booking,
)
from tenants.models import Tenant

logger = logging.getLogger(__name__)

EVENT_FIELDS = frozenset({"id", "channel", "quantity", "occurred_at", "metadata"})
REQUIRED_FIELDS = ("id", "channel", "quantity", "occurred_at")
MAX_ID_LENGTH = 200
# The usage a commit records is named "authorization:<id>" (policies.services.authorize);
# clients may not use the prefix, so that no client event can take a commit's id.
RESERVED_ID_PREFIX = "authorization:"
MAX_REPORTED_ERRORS = 100
DEADLOCK_RETRIES = 3

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ValidEvent:
    client_event_id: str
    channel: Channel
    quantity: int
    occurred_at: datetime  # UTC
    metadata: dict[str, Any]
    metadata_json: str
    content_hash: str
    period: PeriodBounds


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    batch_id: uuid.UUID
    touched: frozenset[tuple[int, int]]  # (channel_id, period_id) whose balances moved


def _error(index: int | None, field: str | None, detail: str) -> dict[str, Any]:
    if index is None:
        pointer = "/" + (field or "")
        name = field
    else:
        pointer = f"/events/{index}" + (f"/{field}" if field else "")
        name = f"events[{index}]" + (f".{field}" if field else "")
    error: dict[str, Any] = {"pointer": pointer, "field": name, "detail": detail}
    if index is not None:
        error["index"] = index
    return error


def content_hash(
    channel_code: str, quantity: int, occurred_at: datetime, metadata_json: str
) -> str:
    raw = f"{channel_code}\x1f{quantity}\x1f{occurred_at.isoformat()}\x1f{metadata_json}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _raise_for(errors: list[dict[str, Any]], *, closed_only: bool) -> None:
    total = len(errors)
    shown = errors[:MAX_REPORTED_ERRORS]
    more = f" (the first {MAX_REPORTED_ERRORS} are listed)" if total > MAX_REPORTED_ERRORS else ""
    if closed_only:
        raise Unprocessable(
            f"{total} event(s) belong to a closed billing period{more}; nothing was recorded.",
            errors=shown,
            extra={"code": "period_closed"},
        )
    raise InvalidInput(
        f"{total} problem(s) in the batch{more}; nothing was recorded.", errors=shown
    )


def usage_batch_validate(
    *,
    tenant: Tenant,
    payload: Any,
    channels: dict[str, Channel],
    now: datetime,
) -> list[ValidEvent]:
    """Check a request body ``{"events": [...]}`` and return the events, or raise
    ``InvalidInput`` (400) naming every bad event index and field, or
    ``Unprocessable`` (422) when the only problem is a closed period."""
    if not isinstance(payload, dict):
        raise InvalidInput(
            'The body must be a JSON object {"events": [...]}.',
            errors=[_error(None, None, "expected an object")],
        )
    extra = sorted(set(payload) - {"events"})
    if extra:
        raise InvalidInput(
            f"Unknown field(s) {', '.join(extra)}.",
            errors=[_error(None, key, "unknown field") for key in extra],
        )
    events = payload.get("events")
    if not isinstance(events, list):
        raise InvalidInput(
            '"events" must be a list of events.',
            errors=[_error(None, "events", "required, a list of 1 to 1000 events")],
        )
    limit = settings.USAGE_MAX_EVENTS_PER_BATCH
    if not 1 <= len(events) <= limit:
        raise InvalidInput(
            f'"events" must hold 1 to {limit} events; it holds {len(events)}.',
            errors=[_error(None, "events", f"1 to {limit} events, got {len(events)}")],
        )

    max_quantity = settings.USAGE_MAX_QUANTITY
    max_metadata = settings.USAGE_MAX_METADATA_BYTES
    latest = now + timedelta(seconds=settings.USAGE_MAX_FUTURE_SKEW_SECONDS)
    tz = tenant.tzinfo
    bounds_by_month: dict[tuple[int, int], PeriodBounds] = {}
    errors: list[dict[str, Any]] = []
    closed_errors: list[dict[str, Any]] = []
    valid: list[ValidEvent] = []

    for index, event in enumerate(events):
        if not isinstance(event, dict):
            errors.append(_error(index, None, "each event must be an object"))
            continue
        before = len(errors)
        for key in event.keys() - EVENT_FIELDS:
            errors.append(_error(index, str(key), "unknown field"))
        for key in REQUIRED_FIELDS:
            if key not in event:
                errors.append(_error(index, key, "this field is required"))
        if len(errors) > before:
            continue

        client_id = event["id"]
        if not isinstance(client_id, str) or not client_id.strip():
            errors.append(_error(index, "id", "must be a non-empty string"))
        elif len(client_id) > MAX_ID_LENGTH:
            errors.append(_error(index, "id", f"at most {MAX_ID_LENGTH} characters"))
        elif client_id.startswith(RESERVED_ID_PREFIX):
            errors.append(_error(index, "id", f"ids starting {RESERVED_ID_PREFIX!r} are reserved"))

        code = event["channel"]
        channel = channels.get(code) if isinstance(code, str) else None
        if not isinstance(code, str):
            errors.append(_error(index, "channel", "must be a channel code (a string)"))
        elif channel is None:
            errors.append(_error(index, "channel", f"unknown channel {code!r}"))
        elif not channel.active:
            errors.append(_error(index, "channel", f"channel {code!r} is not active"))

        quantity = event["quantity"]
        if type(quantity) is not int:
            errors.append(_error(index, "quantity", "must be a whole number"))
        elif quantity < 1:
            errors.append(_error(index, "quantity", "must be at least 1"))
        elif quantity > max_quantity:
            errors.append(_error(index, "quantity", f"must be at most {max_quantity}"))

        occurred_raw = event["occurred_at"]
        occurred_at: datetime | None = None
        if not isinstance(occurred_raw, str):
            errors.append(_error(index, "occurred_at", "must be an ISO 8601 string"))
        else:
            try:
                occurred_at = instant_parse(occurred_raw)
            except ValueError as exc:
                errors.append(_error(index, "occurred_at", str(exc)))
            else:
                if occurred_at > latest:
                    errors.append(_error(index, "occurred_at", "lies too far in the future"))
                    occurred_at = None

        metadata = event.get("metadata", {})
        metadata_json = "{}"
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            errors.append(_error(index, "metadata", "must be an object"))
        elif metadata:
            metadata_json = orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS).decode()
            if len(metadata_json) > max_metadata:
                errors.append(_error(index, "metadata", f"at most {max_metadata} bytes of JSON"))

        if len(errors) > before or occurred_at is None or channel is None:
            continue
        local = occurred_at.astimezone(tz)
        month = (local.year, local.month)
        bounds = bounds_by_month.get(month)
        if bounds is None:
            bounds = bounds_by_month[month] = period_bounds(tenant=tenant, at=occurred_at)
        if not period_accepts_events(bounds=bounds, now=now):
            closed_errors.append(
                _error(index, "occurred_at", f"the billing period {bounds.label} is closed")
            )
            continue
        utc = occurred_at.astimezone(UTC)
        valid.append(
            ValidEvent(
                client_event_id=client_id,
                channel=channel,
                quantity=quantity,
                occurred_at=utc,
                metadata=metadata,
                metadata_json=metadata_json,
                content_hash=content_hash(channel.code, quantity, utc, metadata_json),
                period=bounds,
            )
        )

    if errors:
        _raise_for(errors + closed_errors, closed_only=False)
    if closed_errors:
        _raise_for(closed_errors, closed_only=True)
    return valid


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
    # Portable path (the embedded SQLite default): insert, then see whose batch won.
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
            for e in events
        ],
        ignore_conflicts=True,
        batch_size=500,
    )
    return set(
        UsageEvent.objects.for_tenant(tenant)
        .filter(batch_id=batch_id)
        .values_list("client_event_id", flat=True)
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
    that waited for a close answers 422 ``period_closed``, nothing recorded). Then
    events are inserted in id order with ``ON CONFLICT DO NOTHING``
    (a repeated id inserted by a concurrent batch waits for that batch and is then
    seen as already recorded); afterwards the touched balance rows are locked in id
    order and moved once each. A transaction holding a balance lock has finished its
    inserts, so lock waits cannot form a cycle.
    """
    now = now or timezone.now()
    channels = {channel.code: channel for channel in Channel.objects.all()}
    events = usage_batch_validate(tenant=tenant, payload=payload, channels=channels, now=now)

    # Repeats inside the batch: same content → a duplicate; other content → conflict.
    unique: dict[str, ValidEvent] = {}
    duplicates = 0
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
        _raise_conflict(conflicting, within_batch=True)
    ordered = [unique[key] for key in sorted(unique)]

    def record() -> IngestResult:
        with transaction.atomic():
            result = _record(tenant=tenant, events=ordered, duplicates=duplicates, now=now)
            if result.touched:
                request_evaluation()
            return result

    return with_deadlock_retry(record)


def _raise_conflict(ids: set[str], *, within_batch: bool) -> None:
    listed = sorted(ids)
    where = "within this batch" if within_batch else "already recorded"
    raise Conflict(
        f"{len(listed)} event id(s) {where} with different content: "
        f"{', '.join(listed[:20])}{' …' if len(listed) > 20 else ''}. Nothing was recorded.",
        errors=[
            {"pointer": "/events", "field": "id", "detail": f"{event_id} has different content"}
            for event_id in listed[:MAX_REPORTED_ERRORS]
        ],
        extra={"conflicting_ids": listed},
    )


def _record(
    *, tenant: Tenant, events: list[ValidEvent], duplicates: int, now: datetime
) -> IngestResult:
    labels = {event.period.label: event.period for event in events}
    # The periods are locked (shared) before anything is written and checked under the
    # lock: a close that is under way is waited for and then seen, so nothing is booked
    # into a period whose charge is final.
    periods = periods_lock_for_booking(tenant=tenant, bounds=list(labels.values()))
    closed = {
        label for label, period in periods.items() if period.status == BillingPeriod.Status.CLOSED
    }
    if closed:
        _raise_for(
            [
                _error(None, "events", f"the billing period {label} is closed")
                for label in sorted(closed)
            ],
            closed_only=True,
        )

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
            UsageEvent.objects.for_tenant(tenant)
            .filter(client_event_id__in=list(repeated))
            .values_list("client_event_id", "content_hash")
        )
        conflicting = {
            key for key, event in repeated.items() if stored.get(key) != event.content_hash
        }
        if conflicting:
            _raise_conflict(conflicting, within_batch=False)
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
    return IngestResult(
        accepted=len(inserted),
        duplicates=duplicates,
        batch_id=batch_id,
        touched=frozenset(units),
    )
