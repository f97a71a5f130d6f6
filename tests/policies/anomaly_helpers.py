"""Usage rollups for the anomaly watch's tests: a tenant's steady traffic over past weeks
and a spike now, written as the rollups ingestion keeps (quarter hours and hours)."""

from __future__ import annotations

from datetime import datetime, timedelta

import time_machine
from django.utils import timezone

from metering.models import Channel, UsageRollup
from metering.services.rollups import slot_floor
from policies.models import AnomalyAlert
from policies.services.anomaly import anomaly_watch
from tenants.models import Tenant

QUARTER = timedelta(minutes=15)


def add_hour(tenant: Tenant, channel: Channel, start: datetime, units: int) -> None:
    """``units`` sent in the clock hour from ``start``, spread over its quarter hours."""
    assert start.minute == 0
    share, rest = divmod(units, 4)
    for quarter in range(4):
        quantity = share + (1 if quarter < rest else 0)
        UsageRollup.objects.create(
            tenant=tenant, channel=channel, slot_seconds=900,
            slot_start=start + quarter * QUARTER, quantity=quantity, event_count=quantity,
        )  # fmt: skip
    UsageRollup.objects.create(
        tenant=tenant, channel=channel, slot_seconds=3600, slot_start=start,
        quantity=units, event_count=units,
    )  # fmt: skip


def steady_traffic(
    tenant: Tenant, channel: Channel, *, until: datetime, per_hour: int, weeks: int = 4,
    hours: int = 48, last: int | None = None,
) -> None:  # fmt: skip
    """``per_hour`` units in each of the ``hours`` hours before ``until`` (a whole hour),
    and in the same hours of each of ``weeks`` earlier weeks; ``last`` units in the last
    hour instead (the spike)."""
    for week in range(weeks + 1):
        for back in range(1, hours + 1):
            start = until - timedelta(weeks=week, hours=back)
            units = last if (week == 0 and back == 1 and last is not None) else per_hour
            add_hour(tenant, channel, start, units)


def anomaly_alert_open(tenant: Tenant, channel: Channel) -> AnomalyAlert:
    """An alert the watch opens on a spike of ``tenant`` now (10× its normal 200 units an
    hour)."""
    end = slot_floor(timezone.now(), 3600)
    steady_traffic(tenant, channel, until=end, per_hour=200, last=2000)
    with time_machine.travel(end + timedelta(minutes=1), tick=False):
        anomaly_watch()
    return AnomalyAlert.objects.get(tenant=tenant, channel=channel, status="open")
