"""Reads of usage over time — the API's usage series and the portal's usage chart — from
the rollups (``metering.models.UsageRollup``), never by scanning the events.

Rollups sum the events per quarter hour in UTC. Since 2000 every zone's offset is a whole
number of quarter hours, so a bucket of the tenant's local time (hour, day, month) is a
whole number of slots and the rollups give its exact sum. Events are read only where a
slot would straddle a bucket edge: a range that starts or ends inside a quarter hour (the
default end is now), and the rare slots in which a zone changed its offset at a time that
is not a quarter hour (St. John's, Goose Bay and Moncton changed at 00:01 local until
2011, Gaza, Hebron and Casey at hh:01 before 2023). A zone that had an offset in quarter
hours of none from 1999 is read from the events altogether.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour, TruncMonth
from django.utils import timezone

from metering.hooks import rules_reader
from metering.models import Balance, Channel, Grant, UsageEvent, UsageRollup
from metering.services.periods import PeriodBounds, month_bounds, period_bounds
from metering.services.rollups import SLOT, SLOT_SECONDS
from tenants.models import Tenant

GRANULARITIES = {"hour": TruncHour, "day": TruncDay, "month": TruncMonth}
MAX_BUCKETS = 5000

# Offsets checked from here to here; later instants follow each zone's standing rule,
# whose changes fall on whole hours (tests/metering/test_usage_rollups.py checks 2100).
_ZONE_SCAN = (datetime(1999, 12, 1, tzinfo=UTC), datetime(2041, 1, 1, tzinfo=UTC))


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


def bucket_count(start: datetime, end: datetime, granularity: str) -> int:
    seconds = (end - start).total_seconds()
    per = {"hour": 3600, "day": 86400, "month": 28 * 86400}[granularity]
    return int(seconds // per) + 1


@cache
def straddled_slots(zone: str) -> tuple[datetime, ...] | None:
    """The slots (their UTC starts) in which ``zone`` changed its offset after the slot
    began, so that their events may fall into two local hours; None when some offset of
    the zone is not a whole number of quarter hours (rollups cannot serve it). Found once
    per zone and process: a day-by-day walk and a bisection at each change."""
    tz = zoneinfo.ZoneInfo(zone)
    day = timedelta(days=1)
    moment, until = _ZONE_SCAN
    offset = moment.astimezone(tz).utcoffset()
    straddled: list[datetime] = []
    while moment < until:
        if offset is None or offset.total_seconds() % SLOT_SECONDS:
            return None
        following = moment + day
        next_offset = following.astimezone(tz).utcoffset()
        if next_offset != offset:
            before, after = moment, following  # the change lies in (before, after]
            while after - before > timedelta(seconds=1):
                middle = before + (after - before) / 2
                if middle.astimezone(tz).utcoffset() == offset:
                    before = middle
                else:
                    after = middle
            change = after.replace(microsecond=0)
            if change.timestamp() % SLOT_SECONDS:
                straddled.append(change - timedelta(seconds=change.timestamp() % SLOT_SECONDS))
        moment, offset = following, next_offset
    return tuple(straddled)


def _ceil_slot(moment: datetime) -> datetime:
    floor = _floor_slot(moment)
    return floor if floor == moment else floor + SLOT


def _floor_slot(moment: datetime) -> datetime:
    return datetime.fromtimestamp(moment.timestamp() // SLOT_SECONDS * SLOT_SECONDS, UTC)


def usage_totals(
    *,
    tenant: Tenant,
    start: datetime,
    end: datetime,
    granularity: str,
    channels: list[Channel],
) -> dict[tuple[int, datetime], int]:
    """Units used per (channel id, bucket start in UTC) in [start, end), buckets of the
    tenant's local time; buckets without usage are left out. Equal to summing the events,
    read from the rollups: one query, whatever the history."""
    trunc = GRANULARITIES[granularity]
    tz = tenant.tzinfo
    first, last = _ceil_slot(start), _floor_slot(end)
    straddled = straddled_slots(tenant.time_zone)
    # Windows read from the events: what no whole slot inside the range covers.
    raw_windows: list[tuple[datetime, datetime]] = []
    if straddled is None or first >= last:
        raw_windows.append((start, end))
        rollups: QuerySet[Any] | None = None
    else:
        if start < first:
            raw_windows.append((start, first))
        if last < end:
            raw_windows.append((last, end))
        inside = [slot for slot in straddled if first <= slot < last]
        raw_windows.extend((slot, slot + SLOT) for slot in inside)
        rollups = UsageRollup.objects.for_tenant(tenant).filter(
            channel__in=channels, slot_start__gte=first, slot_start__lt=last
        )
        if inside:
            rollups = rollups.exclude(slot_start__in=inside)
        rollups = (
            rollups.annotate(bucket=trunc("slot_start", tzinfo=tz))
            .values("channel_id", "bucket")
            .annotate(quantity=Sum("quantity"))
            .order_by()
        )
    query = rollups
    if raw_windows:
        window = Q()
        for low, high in raw_windows:
            window |= Q(occurred_at__gte=low, occurred_at__lt=high)
        raw = (
            UsageEvent.objects.for_tenant(tenant)
            .filter(window, channel__in=channels)
            .annotate(bucket=trunc("occurred_at", tzinfo=tz))
            .values("channel_id", "bucket")
            .annotate(quantity=Sum("quantity"))
            .order_by()
        )
        query = raw if rollups is None else rollups.union(raw, all=True)
    assert query is not None
    totals: dict[tuple[int, datetime], int] = {}
    for row in query:
        key = (row["channel_id"], row["bucket"].astimezone(UTC))
        totals[key] = totals.get(key, 0) + row["quantity"]
    return totals


def usage_series(
    *,
    tenant: Tenant,
    start: datetime,
    end: datetime,
    granularity: str,
    channels: list[Channel],
) -> list[dict[str, Any]]:
    """Usage per channel and bucket in [start, end), zero-filled, buckets aligned
    to the tenant's time zone. One query, whatever the history."""
    totals = usage_totals(
        tenant=tenant, start=start, end=end, granularity=granularity, channels=channels
    )
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
