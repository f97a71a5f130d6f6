"""Reads of usage over time — the API's usage series and the portal's usage chart — from
the rollups (``metering.models.UsageRollup``), never by scanning the events.

A bucket (a local hour, day or month) is a span of instants between two local boundaries.
Rollups sum the events per UTC quarter hour, hour and day, and since 2000 every zone's
offset is a whole number of quarter hours, so each bucket is a whole number of slots: it is
read as its largest whole UTC days, then hours, then quarter hours, and is exact. Events
are read only for a part of a quarter hour: at ``start`` and ``end`` when they fall inside
one, or at a boundary of a zone whose offset is not in quarter hours. A read "up to now"
(``through_now``) takes the quarter hour holding now whole, from its rollup. Buckets are
spans of instants, so an hour that a DST change repeats (02:00 twice in Berlin in October)
is two buckets, each with its own usage.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q, Sum
from django.utils import timezone

from metering import sql as metering_sql
from metering.hooks import rules_reader
from metering.models import Balance, Channel, Grant, UsageEvent, UsageRollup
from metering.services.partitions import month_start, usage_event_months_attached
from metering.services.periods import PeriodBounds, month_bounds, period_bounds
from metering.services.rollups import SLOT_SECONDS, SLOT_SIZES, slot_floor
from tenants.models import Tenant

GRANULARITIES = ("hour", "day", "month")
MAX_BUCKETS = 5000


def _bucket_starts(
    start: datetime, end: datetime, granularity: str, tenant: Tenant
) -> list[datetime]:
    """Every bucket start in [start, end) in the tenant's time zone, as UTC."""
    tz = tenant.tzinfo
    local = start.astimezone(tz)
    if granularity == "hour":
        cursor = local.replace(minute=0, second=0, microsecond=0)
    elif granularity == "day":
        cursor = local.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        cursor = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    starts: list[datetime] = []
    while cursor.astimezone(UTC) < end:
        starts.append(cursor.astimezone(UTC))
        if granularity == "hour":
            # Step in UTC so that DST changes neither skip nor repeat an hour.
            cursor = (cursor.astimezone(UTC) + timedelta(hours=1)).astimezone(tz)
        elif granularity == "day":
            naive = cursor.replace(tzinfo=None) + timedelta(days=1)
            cursor = naive.replace(tzinfo=tz)
        else:
            cursor = month_bounds(
                cursor.year + (cursor.month == 12), cursor.month % 12 + 1, tz
            ).starts_at.astimezone(tz)
    return starts


def usage_edge_unkept(moment: datetime, *, now: datetime) -> datetime | None:
    """The month whose events were archived (``USAGE_RETENTION_MONTHS``) if ``moment``
    cuts one of its quarter hours, else ``None``. A read edge inside a quarter hour sums
    that part's events (``usage_totals``); once they are archived only the rollups are left,
    whole quarter hours, and such an edge could only be answered wrong."""
    if slot_floor(moment) == moment or month_start(moment) >= month_start(now):
        return None  # a whole slot, or this month's (never archived)
    attached = usage_event_months_attached()
    if attached is None or month_start(moment) in attached:
        return None
    return month_start(moment)


def bucket_count(start: datetime, end: datetime, granularity: str) -> int:
    seconds = (end - start).total_seconds()
    per = {"hour": 3600, "day": 86400, "month": 28 * 86400}[granularity]
    return int(seconds // per) + 1


def _cover(
    low: datetime, high: datetime, sizes: tuple[int, ...]
) -> list[tuple[int, datetime, datetime]]:
    """[low, high), both on quarter hours, as the fewest slots: (slot seconds, from, to)
    spans, the largest slots in the middle."""
    if low >= high:
        return []
    size = sizes[0]
    if len(sizes) == 1:
        return [(size, low, high)]
    first, last = _ceil(low, size), slot_floor(high, size)
    if first >= last:
        return _cover(low, high, sizes[1:])
    return [*_cover(low, first, sizes[1:]), (size, first, last), *_cover(last, high, sizes[1:])]


def _ceil(moment: datetime, seconds: int) -> datetime:
    floor = slot_floor(moment, seconds)
    return floor if floor == moment else floor + timedelta(seconds=seconds)


def usage_totals(
    *,
    tenant: Tenant,
    start: datetime,
    end: datetime,
    granularity: str,
    channels: list[Channel],
    through_now: bool = False,
) -> dict[tuple[int, datetime], int]:
    """Units used per (channel id, bucket start in UTC) in [start, end), buckets of the
    tenant's local time (``_bucket_starts``; the first is cut at ``start``); buckets
    without usage are left out. Equal to summing the events by instant, read from the
    rollups: one query, whatever the history.

    ``through_now``: ``end`` is now, and the quarter hour holding it counts whole — every
    event recorded in it so far, read from its rollup. Summing that part of the quarter
    hour from the events instead would cost, at every read of "up to now", as many rows as
    the tenant sent in the last quarter hour (hundreds of thousands at a high rate). The
    only events it adds are those stamped ahead of now (``USAGE_MAX_FUTURE_SKEW_SECONDS``),
    which the balances count as used already."""
    starts = _bucket_starts(start, end, granularity, tenant)
    edges = [start, *starts[1:], _ceil(end, SLOT_SECONDS) if through_now else end]
    slots: list[tuple[int, datetime, datetime, int]] = []
    raw: list[tuple[datetime, datetime, int]] = []
    for bucket, (low, high) in enumerate(itertools.pairwise(edges)):
        first, last = _ceil(low, SLOT_SECONDS), slot_floor(high)
        if first >= last:
            raw.append((low, high, bucket))
            continue
        if low < first:
            raw.append((low, first, bucket))
        if last < high:
            raw.append((last, high, bucket))
        slots.extend((size, a, b, bucket) for size, a, b in _cover(first, last, SLOT_SIZES))
    channel_ids = [channel.pk for channel in channels]
    if metering_sql.native():
        rows = metering_sql.usage_rollups_read(
            tenant_id=tenant.pk, channel_ids=channel_ids, slots=slots, raw=raw
        )
    else:
        rows = _read_portably(tenant, channel_ids, slots, raw)
    totals: dict[tuple[int, datetime], int] = {}
    for bucket, channel_id, quantity in rows:
        key = (channel_id, starts[bucket])
        totals[key] = totals.get(key, 0) + quantity
    return totals


def _read_portably(
    tenant: Tenant,
    channel_ids: list[int],
    slots: list[tuple[int, datetime, datetime, int]],
    raw: list[tuple[datetime, datetime, int]],
) -> list[tuple[int, int, int]]:
    """``usage_rollups_read`` through the ORM (the embedded SQLite default): the spans'
    rows, summed here."""
    rows: list[tuple[int, int, int]] = []
    if slots:
        spans = Q()
        for size, low, high, _ in slots:
            spans |= Q(slot_seconds=size, slot_start__gte=low, slot_start__lt=high)
        bucket_of = {(size, low): bucket for size, low, _, bucket in slots}
        lows = sorted(bucket_of)
        for size, slot_start, channel_id, quantity in (
            UsageRollup.objects.for_tenant(tenant)
            .filter(spans, channel_id__in=channel_ids)
            .values_list("slot_seconds", "slot_start", "channel_id", "quantity")
        ):
            # The span holding this slot: the last of its size starting at or before it.
            at = bisect.bisect_right(lows, (size, slot_start)) - 1
            rows.append((bucket_of[lows[at]], channel_id, quantity))
    if raw:
        windows = Q()
        for low, high, _ in raw:
            windows |= Q(occurred_at__gte=low, occurred_at__lt=high)
        for occurred_at, channel_id, quantity in (
            UsageEvent.objects.for_tenant(tenant)
            .filter(windows, channel_id__in=channel_ids)
            .values_list("occurred_at", "channel_id", "quantity")
        ):
            bucket = next(b for low, high, b in raw if low <= occurred_at < high)
            rows.append((bucket, channel_id, quantity))
    return rows


def usage_series(
    *,
    tenant: Tenant,
    start: datetime,
    end: datetime,
    granularity: str,
    channels: list[Channel],
    through_now: bool = False,
) -> list[dict[str, Any]]:
    """Usage per channel and bucket in [start, end), zero-filled, buckets aligned
    to the tenant's time zone (``through_now``: as ``usage_totals``). One query, whatever
    the history."""
    totals = usage_totals(
        tenant=tenant, start=start, end=end, granularity=granularity, channels=channels,
        through_now=through_now,
    )  # fmt: skip
    starts = _bucket_starts(start, end, granularity, tenant)
    series: list[dict[str, Any]] = []
    for channel in channels:
        quantities = [totals.get((channel.pk, bucket), 0) for bucket in starts]
        series.append(
            {
                "channel": channel.code,
                "unit": channel.unit,
                "total": sum(quantities),
                "points": [
                    {"start": bucket.astimezone(tenant.tzinfo), "quantity": quantity}
                    for bucket, quantity in zip(starts, quantities, strict=True)
                ],
            }
        )
    return series


# ---------------------------------------------------------------- the portal's chart

CHART_GRANULARITIES = ("day", "hour")
CHART_PERIODS_BACK = 12  # this period and the twelve before it


@dataclass(frozen=True)
class UsagePoint:
    start: datetime  # in the tenant's time zone
    quantity: int
    cumulative: int  # since the period's start, this bucket included


@dataclass(frozen=True)
class ChannelUsage:
    channel: Channel
    included: int  # the included credits of the period: the line across the chart
    total: int
    points: list[UsagePoint]


@dataclass(frozen=True)
class UsageChart:
    bounds: PeriodBounds  # the period shown
    until: datetime  # UTC: the period's end, or now for the current period
    granularity: str
    periods: list[PeriodBounds]  # this period and the twelve before, newest first
    channels: list[ChannelUsage]


def usage_chart(
    *,
    tenant: Tenant,
    periods_ago: int = 0,
    granularity: str = "day",
    channel_codes: list[str] | None = None,
    now: datetime | None = None,
) -> UsageChart:
    """The usage chart of one billing period: this one (``periods_ago=0``, up to now) or
    one of the twelve before, by ``day`` or ``hour`` in the tenant's time zone; per
    channel (the active ones and any other used in that period, or those of
    ``channel_codes``) its buckets zero-filled with the running total, and the period's
    included credits for the line: those granted to the balance (less reductions), or for
    a channel not used that period the terms in force then. ``periods`` lists the
    periods a page can offer. A fixed number of queries, whatever the history: channels,
    balances with their included credits, the terms when a channel has no balance, and
    one read of the rollups.
    """
    if granularity not in CHART_GRANULARITIES:
        raise ValueError(f"granularity must be one of {CHART_GRANULARITIES}")
    if not 0 <= periods_ago <= CHART_PERIODS_BACK:
        raise ValueError(f"periods_ago must be from 0 to {CHART_PERIODS_BACK}")
    now = now or timezone.now()
    periods = [period_bounds(tenant=tenant, at=now)]
    for _ in range(CHART_PERIODS_BACK):
        periods.append(period_bounds(tenant=tenant, at=periods[-1].starts_at - timedelta(1)))
    bounds = periods[periods_ago]
    until = min(bounds.ends_at, now)

    included_by_channel = {
        row["channel_id"]: row["included"] or 0
        for row in Balance.objects.for_tenant(tenant)
        .filter(period__starts_at=bounds.starts_at)
        .values("channel_id")
        .annotate(
            included=Sum(
                "grants__units",
                filter=Q(grants__kind=Grant.Kind.INCLUDED),
            )
            - Sum("grants__reduced_units", filter=Q(grants__kind=Grant.Kind.INCLUDED))
        )
    }
    channels = [
        channel
        for channel in Channel.objects.all()
        if (channel_codes is None and (channel.active or channel.pk in included_by_channel))
        or (channel_codes is not None and channel.code in channel_codes)
    ]
    unused = [channel for channel in channels if channel.pk not in included_by_channel]
    if unused:
        at = now if periods_ago == 0 else bounds.starts_at
        rules = rules_reader().effective_rules(tenant=tenant, channels=unused, at=at)
        included_by_channel.update({pk: terms.included_units for pk, terms in rules.items()})

    totals = (
        usage_totals(
            tenant=tenant,
            start=bounds.starts_at,
            end=until,
            granularity=granularity,
            channels=channels,
            through_now=until == now,
        )
        if until > bounds.starts_at
        else {}
    )
    starts = _bucket_starts(bounds.starts_at, until, granularity, tenant)
    rows: list[ChannelUsage] = []
    for channel in channels:
        running = 0
        points: list[UsagePoint] = []
        for bucket in starts:
            quantity = totals.get((channel.pk, bucket), 0)
            running += quantity
            points.append(
                UsagePoint(
                    start=bucket.astimezone(tenant.tzinfo), quantity=quantity, cumulative=running
                )
            )
        rows.append(
            ChannelUsage(
                channel=channel,
                included=included_by_channel.get(channel.pk, 0),
                total=running,
                points=points,
            )
        )
    return UsageChart(
        bounds=bounds, until=until, granularity=granularity, periods=periods, channels=rows
    )
