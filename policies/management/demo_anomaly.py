"""The demo's anomaly alert (``seed_demo``): one tenant's hourly e-mail traffic over the
last two days and the same days of the four weeks before, then a spike of eight times its
normal in the last hour, recorded through ingestion like the rest of the demo's usage; the
watch then opens the alert staff can try (confirm with a throttle, extend, lift). The
tenant's rule does not restrict, so no throttle is applied before staff look."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction

from metering.models import Channel
from metering.services.ingest import usage_record_batch
from metering.services.periods import period_bounds
from metering.services.rollups import SLOT_SECONDS, slot_floor
from policies.models import AnomalyAlert
from policies.services.anomaly import anomaly_watch
from tenants.models import Tenant

TENANT, CHANNEL = "codecraft", "email"
WEEKS, HOURS, SPIKE = 4, 48, 8
BATCH = 500


def _normal(at: datetime, tenant: Tenant) -> float:
    """Units an hour: a working-day curve around 14:00 local over a night-time floor."""
    hour = at.astimezone(tenant.tzinfo).hour + 0.5
    return 40 + 160 * math.exp(-(((hour - 14) / 4) ** 2))


def anomaly_traffic(*, tenant: Tenant, now: datetime) -> int:
    """Record the demo tenant's hourly traffic and spike (call it before the demo's past
    periods close, as its other history). Returns the events recorded."""
    if tenant.slug != TENANT:
        return 0
    channel = Channel.objects.get(code=CHANNEL)
    rng = random.Random(13)  # noqa: S311 - demo data, not security
    end = slot_floor(now, SLOT_SECONDS)
    batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for week in range(WEEKS + 1):
        for back in range(1, HOURS + 1):
            hour = end - timedelta(weeks=week, hours=back)
            units = _normal(hour, tenant) * rng.uniform(0.85, 1.15)
            if week == 0 and back == 1:
                units *= SPIKE  # the last hour: a campaign gone wrong
            for quarter in range(4):  # one event a quarter hour
                at = hour + timedelta(minutes=15 * quarter + 5)
                batches[period_bounds(tenant=tenant, at=at).label].append(
                    {
                        "id": f"demo-anomaly-{at:%Y%m%d%H%M}",
                        "channel": channel.code,
                        "quantity": max(1, round(units / 4)),
                        "occurred_at": at.isoformat(),
                    }
                )
    recorded = 0
    with transaction.atomic():
        for events in batches.values():
            events.sort(key=lambda event: event["occurred_at"])
            for start in range(0, len(events), BATCH):
                chunk = events[start : start + BATCH]
                latest = datetime.fromisoformat(chunk[-1]["occurred_at"]).astimezone(UTC)
                result = usage_record_batch(
                    tenant=tenant, payload={"events": chunk}, now=latest + timedelta(minutes=1)
                )
                recorded += result.accepted
    return recorded


def anomaly_alert(*, now: datetime) -> None:
    """Run the watch once (as beat does every few minutes), when no alert exists yet."""
    if not AnomalyAlert.objects.exists():
        anomaly_watch(now=now)
