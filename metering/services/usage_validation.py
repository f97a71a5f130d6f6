"""What a valid usage batch is: the lean check of ``{"events": [...]}`` before recording.

This is a hot path (tens of thousands of events a second over HTTP): one pass over the
events, no serializer instance per event. Every problem is collected with its event
index and field, so that one answer names them all. Also here: the content hash that
tells a repeated event from a conflicting one, and the id prefix reserved for the usage
that authorization commits record. ``metering.services.ingest`` records what passes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings

from creditguard.api.fields import instant_parse
from creditguard.errors import InvalidInput, Unprocessable, input_error
from metering.models import Channel
from metering.services.periods import PeriodBounds, period_accepts_events, period_bounds
from tenants.models import Tenant

EVENT_FIELDS = frozenset({"id", "channel", "quantity", "occurred_at", "metadata"})
REQUIRED_FIELDS = ("id", "channel", "quantity", "occurred_at")
MAX_ID_LENGTH = 200
# The usage a commit records is named "authorization:<id>" (policies.services.authorize);
# clients may not use the prefix, so that no client event can take a commit's id.
RESERVED_ID_PREFIX = "authorization:"
MAX_REPORTED_ERRORS = 100


@dataclass(frozen=True, slots=True)
class ValidEvent:
    """An event that passed the check, with what recording needs already computed."""

    client_event_id: str
    channel: Channel
    quantity: int
    occurred_at: datetime  # UTC
    metadata: dict[str, Any]
    metadata_json: str
    content_hash: str
    period: PeriodBounds


def batch_error(index: int | None, field: str | None, detail: str) -> dict[str, Any]:
    """One problem of a batch (``input_error``): of event ``index``'s ``field``, or of
    the body's own ``field`` when ``index`` is None."""
    fields = [field] if field else []
    if index is None:
        return input_error(fields, detail)
    return input_error(["events", index, *fields], detail, index=index)


def content_hash(
    channel_code: str, quantity: int, occurred_at: datetime, metadata_json: str
) -> str:
    """What makes two events with one id the same event (a repeat) or a conflict: the
    channel, the quantity, the instant in UTC and the canonical metadata JSON."""
    raw = f"{channel_code}\x1f{quantity}\x1f{occurred_at.isoformat()}\x1f{metadata_json}"
    return hashlib.sha256(raw.encode()).hexdigest()


def batch_refuse(errors: list[dict[str, Any]], *, closed_only: bool) -> None:
    """Refuse the whole batch: 400 listing the problems, or 422 ``period_closed`` when
    ``closed_only`` (its only problem is a closed period)."""
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
    late: list[tuple[ValidEvent, dict[str, Any]]] | None = None,
) -> list[ValidEvent]:
    """Check a request body ``{"events": [...]}`` and return the events, or raise
    ``InvalidInput`` (400) naming every bad event index and field, or
    ``Unprocessable`` (422) when the only problem is a closed period. Given ``late``,
    valid events of closed periods are put there with their error instead of refusing
    them (the caller answers replays of recorded ones as duplicates)."""
    if not isinstance(payload, dict):
        raise InvalidInput(
            'The body must be a JSON object {"events": [...]}.',
            errors=[batch_error(None, None, "expected an object")],
        )
    extra = sorted(set(payload) - {"events"})
    if extra:
        raise InvalidInput(
            f"Unknown field(s) {', '.join(extra)}.",
            errors=[batch_error(None, key, "unknown field") for key in extra],
        )
    events = payload.get("events")
    if not isinstance(events, list):
        raise InvalidInput(
            '"events" must be a list of events.',
            errors=[batch_error(None, "events", "required, a list of 1 to 1000 events")],
        )
    limit = settings.USAGE_MAX_EVENTS_PER_BATCH
    if not 1 <= len(events) <= limit:
        raise InvalidInput(
            f'"events" must hold 1 to {limit} events; it holds {len(events)}.',
            errors=[batch_error(None, "events", f"1 to {limit} events, got {len(events)}")],
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
            errors.append(batch_error(index, None, "each event must be an object"))
            continue
        before = len(errors)
        for key in event.keys() - EVENT_FIELDS:
            errors.append(batch_error(index, str(key), "unknown field"))
        for key in REQUIRED_FIELDS:
            if key not in event:
                errors.append(batch_error(index, key, "this field is required"))
        if len(errors) > before:
            continue

        client_id = event["id"]
        if not isinstance(client_id, str) or not client_id.strip():
            errors.append(batch_error(index, "id", "must be a non-empty string"))
        elif len(client_id) > MAX_ID_LENGTH:
            errors.append(batch_error(index, "id", f"at most {MAX_ID_LENGTH} characters"))
        elif client_id.startswith(RESERVED_ID_PREFIX):
            errors.append(
                batch_error(index, "id", f"ids starting {RESERVED_ID_PREFIX!r} are reserved")
            )

        code = event["channel"]
        channel = channels.get(code) if isinstance(code, str) else None
        if not isinstance(code, str):
            errors.append(batch_error(index, "channel", "must be a channel code (a string)"))
        elif channel is None:
            errors.append(batch_error(index, "channel", f"unknown channel {code!r}"))
        elif not channel.active:
            errors.append(batch_error(index, "channel", f"channel {code!r} is not active"))

        quantity = event["quantity"]
        if type(quantity) is not int:
            errors.append(batch_error(index, "quantity", "must be a whole number"))
        elif quantity < 1:
            errors.append(batch_error(index, "quantity", "must be at least 1"))
        elif quantity > max_quantity:
            errors.append(batch_error(index, "quantity", f"must be at most {max_quantity}"))

        occurred_raw = event["occurred_at"]
        occurred_at: datetime | None = None
        if not isinstance(occurred_raw, str):
            errors.append(batch_error(index, "occurred_at", "must be an ISO 8601 string"))
        else:
            try:
                occurred_at = instant_parse(occurred_raw)
            except ValueError as exc:
                errors.append(batch_error(index, "occurred_at", str(exc)))
            else:
                if occurred_at > latest:
                    errors.append(batch_error(index, "occurred_at", "lies too far in the future"))
                    occurred_at = None

        metadata = event.get("metadata", {})
        metadata_json = "{}"
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            errors.append(batch_error(index, "metadata", "must be an object"))
        elif metadata:
            metadata_json = orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS).decode()
            if len(metadata_json) > max_metadata:
                errors.append(
                    batch_error(index, "metadata", f"at most {max_metadata} bytes of JSON")
                )

        if len(errors) > before or occurred_at is None or channel is None:
            continue
        local = occurred_at.astimezone(tz)
        month = (local.year, local.month)
        bounds = bounds_by_month.get(month)
        if bounds is None:
            bounds = bounds_by_month[month] = period_bounds(tenant=tenant, at=occurred_at)
        closed = not period_accepts_events(bounds=bounds, now=now)
        if closed:
            closed_errors.append(
                batch_error(index, "occurred_at", f"the billing period {bounds.label} is closed")
            )
            if late is None:
                continue
        utc = occurred_at.astimezone(UTC)
        valid_event = ValidEvent(
            client_event_id=client_id,
            channel=channel,
            quantity=quantity,
            occurred_at=utc,
            metadata=metadata,
            metadata_json=metadata_json,
            content_hash=content_hash(channel.code, quantity, utc, metadata_json),
            period=bounds,
        )
        if closed and late is not None:
            late.append((valid_event, closed_errors[-1]))
        else:
            valid.append(valid_event)

    if errors:
        batch_refuse(errors + closed_errors, closed_only=False)
    if closed_errors and late is None:
        batch_refuse(closed_errors, closed_only=True)
    return valid
