"""The usage page's figures (``/usage/``) and its CSV: a period's usage per channel by day
or hour, read only through ``metering.usage.usage_chart`` (the rollups, a fixed number of
queries whatever the history), with the forecast of ``metering.selectors.forecast`` — the
same linear projection of the run rate as the overview's — and each channel's drawing
(``portal.chart``) with its labels in the person's language."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Min
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from creditguard.locale_format import (
    count_formatter,
    day_text,
    instant_texts,
    period_text,
    short_day_text,
)
from metering.models import BillingPeriod
from metering.selectors import forecast
from metering.services.periods import period_bounds
from metering.usage import (
    CHART_GRANULARITIES,
    CHART_PERIODS_BACK,
    ChannelUsage,
    UsageChart,
    usage_chart,
)
from portal.chart import ChartDrawing, draw, local_midnights
from tenants.models import Tenant

CSV_COLUMNS = ["channel", "bucket_start", "quantity", "cumulative", "included"]


@dataclass(frozen=True)
class UsageQuery:
    periods_ago: int
    granularity: str
    problems: list[str | Promise]  # what was asked for and could not be shown


def oldest_period_ago(*, tenant: Tenant, now: datetime | None = None) -> int:
    """How many periods back the account's usage goes (0 to 12): to the period in which
    it began — its creation or its first billing period (the demo's history, imported
    accounts), whichever is earlier. A period before it has no figures of its own: the
    page offered it with the terms of today and nothing used. One query."""
    now = now or timezone.now()
    first = BillingPeriod.objects.for_tenant(tenant).aggregate(first=Min("starts_at"))["first"]
    began = min(moment for moment in (tenant.created_at, first, now) if moment is not None)
    bounds = period_bounds(tenant=tenant, at=now)
    ago = 0
    while ago < CHART_PERIODS_BACK and bounds.starts_at > began:
        bounds = period_bounds(tenant=tenant, at=bounds.starts_at - timedelta(days=1))
        ago += 1
    return ago


def usage_query(params: Mapping[str, str], *, oldest: int = CHART_PERIODS_BACK) -> UsageQuery:
    """The period (``period``: 0 this one, up to ``oldest`` periods back, at most 12) and
    the granularity (``day`` or ``hour``) asked for; what is missing is the default (this
    period, by day), what is not valid too, named in ``problems``."""
    problems: list[str | Promise] = []
    periods_ago = 0
    period = params.get("period", "").strip()
    if period:
        if period.isdigit() and int(period) <= min(oldest, CHART_PERIODS_BACK):
            periods_ago = int(period)
        else:
            problems.append(
                gettext_lazy("That billing period is not available; showing the current one.")
            )
    granularity = params.get("granularity", "").strip() or "day"
    if granularity not in CHART_GRANULARITIES:
        granularity = "day"
        problems.append(gettext_lazy("Usage can be shown by day or by hour; showing it by day."))
    return UsageQuery(periods_ago=periods_ago, granularity=granularity, problems=problems)


@dataclass(frozen=True)
class UsageRow:
    start: datetime  # in the tenant's time zone
    label: str
    quantity: int
    cumulative: int
    # The figures as the locale writes them, formatted here: a month by hour has
    # thousands, too many for a template tag each.
    quantity_text: str
    cumulative_text: str


@dataclass(frozen=True)
class ChannelChart:
    usage: ChannelUsage
    projected: int | None  # at the period's end, at the rate so far (the current period)
    drawing: ChartDrawing
    rows: list[UsageRow]  # the table: every day, or the hours with usage
    busiest: UsageRow | None

    @property
    def percent_of_included(self) -> int | None:
        included = self.usage.included
        return round(100 * self.usage.total / included) if included > 0 else None


@dataclass(frozen=True)
class PeriodChoice:
    periods_ago: int
    label: str
    selected: bool


@dataclass(frozen=True)
class UsagePage:
    chart: UsageChart
    periods_ago: int
    granularity: str
    period_name: str
    periods: list[PeriodChoice]
    channels: list[ChannelChart]

    @property
    def current(self) -> bool:
        return self.periods_ago == 0


def _bucket_labels(
    starts: list[datetime], granularity: str, language: str, tenant: Tenant
) -> list[str]:
    if granularity == "hour":
        return instant_texts(starts, language=language, tz=tenant.tzinfo)
    return [day_text(start.date(), language=language) for start in starts]


def usage_page_for(
    *,
    tenant: Tenant,
    periods_ago: int,
    granularity: str,
    language: str,
    oldest: int = CHART_PERIODS_BACK,
    now: datetime | None = None,
) -> UsagePage:
    """The page of one period; the selector offers the periods up to ``oldest`` back
    (``oldest_period_ago``)."""
    now = now or timezone.now()
    chart = usage_chart(tenant=tenant, periods_ago=periods_ago, granularity=granularity, now=now)
    bounds = chart.bounds
    days = local_midnights(bounds.starts_at, bounds.ends_at, tenant.tzinfo)

    number = count_formatter(language=language)
    # Every channel has the same buckets: each label is written once. Keyed by the
    # instant: local datetimes compare by wall time, and 02:00 happens twice in October.
    starts = [point.start for point in (chart.channels[0].points if chart.channels else [])]
    labels = dict(
        zip(
            (start.timestamp() for start in starts),
            _bucket_labels(starts, granularity, language, tenant),
            strict=True,
        )
    )

    tip = _("%(when)s: %(quantity)s used, %(total)s in the period so far")

    def day_label(moment: datetime) -> str:
        return short_day_text(moment.date(), language=language)

    channels: list[ChannelChart] = []
    for usage in chart.channels:
        projected = None
        if periods_ago == 0:
            projected, _reached = forecast(
                used=usage.total, available=usage.included, bounds=bounds, now=chart.until
            )
        rows = [
            UsageRow(
                start=point.start,
                label=labels[point.start.timestamp()],
                quantity=point.quantity,
                cumulative=point.cumulative,
                quantity_text=number(point.quantity),
                cumulative_text=number(point.cumulative),
            )
            for point in usage.points
        ]
        tips = [
            tip % {"when": row.label, "quantity": row.quantity_text, "total": row.cumulative_text}
            for row in rows
        ]
        drawing = draw(
            starts_at=bounds.starts_at,
            ends_at=bounds.ends_at,
            until=chart.until,
            points=[(row.start, row.cumulative, tip) for row, tip in zip(rows, tips, strict=True)],
            included=usage.included,
            projected=projected if projected is not None and projected > usage.total else None,
            days=days,
            number=number,
            day_label=day_label,
        )
        used = [row for row in rows if row.quantity]
        channels.append(
            ChannelChart(
                usage=usage,
                projected=projected,
                drawing=drawing,
                rows=rows if granularity == "day" else used,
                busiest=max(used, key=lambda row: row.quantity, default=None),
            )
        )
    periods = [
        PeriodChoice(
            periods_ago=index,
            label=period_text(period.label, language=language),
            selected=index == periods_ago,
        )
        for index, period in enumerate(chart.periods[: oldest + 1])
    ]
    return UsagePage(
        chart=chart,
        periods_ago=periods_ago,
        granularity=granularity,
        period_name=period_text(bounds.label, language=language),
        periods=periods,
        channels=channels,
    )


def usage_csv(chart: UsageChart) -> Iterator[str]:
    """The chart as CSV (RFC 4180: a header row, CRLF line ends, quoted where needed):
    one line per channel and bucket, the bucket's start in the tenant's zone (ISO 8601
    with its offset, so the hour a DST change repeats is two distinct lines)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for usage in chart.channels:
        for point in usage.points:
            writer.writerow(
                [
                    usage.channel.code,
                    point.start.isoformat(),
                    point.quantity,
                    point.cumulative,
                    usage.included,
                ]
            )
        yield flush()
