"""The anomaly watch (policy § 2: no single customer may degrade the service) and the
staff's work on its alerts.

``anomaly_watch`` runs from beat every ``ANOMALY_WATCH_SECONDS``. It reads the trailing
hour of every tenant × channel from the quarter-hour usage rollups, with the same hour of
each of the last ``ANOMALY_BASELINE_WEEKS`` weeks, in **one statement for all tenants**
(grouped by tenant × channel; only those with at least ``ANOMALY_MIN_RATE`` units come
back), judges each with ``policies.anomaly.judge``, and for the spikes reads the evidence
(hourly rollups of the spiking pairs) in one more. A spike opens an alert, or updates the
evidence of the one already active for that tenant × channel (at most one: a partial
unique constraint; a re-run or a second worker updates, never adds). A new alert throttles
the channel at once when the tenant's rule restricts or suspends past its limit — the
terms under which the tenant has already agreed that we cap the channel — through
``restriction_apply``, which tells the tenant why. Alerts staff have confirmed or extended
are closed once quiet for ``ANOMALY_QUIET_HOURS`` with their throttle over; open alerts
wait for staff.

Staff's actions on alerts are in ``policies.services.anomaly_actions``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from creditguard.audit import audit_record
from metering.models import Channel, UsageRollup
from metering.services.rollups import SLOT_SECONDS, slot_floor
from policies.anomaly import HOUR, WEEK, Rules, Verdict, evidence_series, judge, throttle_units
from policies.models import Action, AnomalyAlert
from policies.selectors import effective_rule, restrictions_in_force
from policies.services.anomaly_actions import alert_snapshot, alert_throttle, throttle_in_force
from tenants.models import Tenant

# Rule actions under which a tenant has agreed that its channel may be capped.
AUTO_THROTTLE_ACTIONS = (Action.RESTRICT, Action.SUSPEND)


def anomaly_rules() -> Rules:
    """The detector's thresholds from the settings."""
    return Rules(
        factor=settings.ANOMALY_SPIKE_FACTOR,
        spread_factor=settings.ANOMALY_SPREAD_FACTOR,
        floor=settings.ANOMALY_BASELINE_FLOOR,
        min_rate=settings.ANOMALY_MIN_RATE,
        capacity_share=settings.ANOMALY_CAPACITY_SHARE,
    )


@dataclass(frozen=True)
class Candidate:
    tenant_id: int
    channel_id: int
    rate: int
    history: list[int]


def trailing_hours(*, end: datetime, weeks: int, min_rate: int) -> list[Candidate]:
    """Every tenant × channel with at least ``min_rate`` units in the hour before ``end``
    (a quarter-hour boundary), with its units in the same hour of each of the ``weeks``
    weeks before (0 where none). One statement for all tenants: quarter-hour rollups in
    ``weeks`` + 1 windows of four slots, summed per window (the partial index
    ``usage_rollup_quarter_start`` finds them by start)."""
    windows = [
        Q(slot_start__gte=end - HOUR - week * WEEK, slot_start__lt=end - week * WEEK)
        for week in range(weeks + 1)
    ]
    sums = {f"week_{week}": Sum("quantity", filter=window) for week, window in enumerate(windows)}
    rows = (
        UsageRollup.objects.filter(reduce(operator.or_, windows), slot_seconds=SLOT_SECONDS)
        .values("tenant_id", "channel_id")
        .annotate(**sums)
        .filter(**{"week_0__gte": min_rate})
        .order_by("tenant_id", "channel_id")
    )
    return [
        Candidate(
            tenant_id=row["tenant_id"],
            channel_id=row["channel_id"],
            rate=int(row["week_0"]),
            history=[int(row[f"week_{week}"] or 0) for week in range(1, weeks + 1)],
        )
        for row in rows
    ]


def _hourly(
    pairs: list[tuple[int, int]], *, end: datetime, hours: int, weeks: int
) -> dict[tuple[int, int], dict[datetime, int]]:
    """Hourly units of each (tenant, channel) of ``pairs`` for the evidence chart: the
    ``hours`` hours before ``end`` and the ``weeks`` weeks before those. One statement."""
    if not pairs:
        return {}
    start = end - hours * HOUR - weeks * WEEK
    who = reduce(operator.or_, [Q(tenant_id=t, channel_id=c) for t, c in pairs])
    found: dict[tuple[int, int], dict[datetime, int]] = {pair: {} for pair in pairs}
    for tenant_id, channel_id, slot_start, quantity in UsageRollup.objects.filter(
        who, slot_seconds=3600, slot_start__gte=start, slot_start__lt=end
    ).values_list("tenant_id", "channel_id", "slot_start", "quantity"):
        found[(tenant_id, channel_id)][slot_start] = quantity
    return found


@dataclass
class WatchRun:
    """What one run of the watch did."""

    judged: int = 0
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    throttled: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)


def anomaly_watch(*, now: datetime | None = None) -> WatchRun:
    """One run of the watch (beat; safe to run twice or in parallel: an active alert per
    tenant × channel is unique, so a second opener updates it instead)."""
    now = now or timezone.now()
    end = slot_floor(now, SLOT_SECONDS)
    rules, weeks = anomaly_rules(), settings.ANOMALY_BASELINE_WEEKS
    run = WatchRun()
    candidates = trailing_hours(end=end, weeks=weeks, min_rate=rules.min_rate)
    run.judged = len(candidates)
    capacities = {
        pk: (per_day or 0) / 24
        for pk, per_day in Channel.objects.filter(capacity_per_day__gt=0).values_list(
            "pk", "capacity_per_day"
        )
    }
    spikes = [
        (candidate, verdict)
        for candidate in candidates
        if (
            verdict := judge(
                rate=candidate.rate,
                history=candidate.history,
                capacity_per_hour=capacities.get(candidate.channel_id),
                rules=rules,
            )
        ).spike
    ]
    hours = settings.ANOMALY_EVIDENCE_HOURS
    hourly = _hourly(
        [(c.tenant_id, c.channel_id) for c, _ in spikes], end=now, hours=hours, weeks=weeks
    )
    for candidate, verdict in spikes:
        evidence: dict[str, object] = {
            "window_start": (end - HOUR).isoformat(),
            "window_end": end.isoformat(),
            "history": candidate.history,
            "series": evidence_series(
                hourly=hourly[(candidate.tenant_id, candidate.channel_id)],
                end=now,
                hours=hours,
                weeks=weeks,
            ),
        }
        alert, state = _alert_record(candidate, verdict, evidence, end=end, now=now)
        (run.opened if state == "opened" else run.updated).append(alert.pk)
        if state != "updated" and _throttle_if_allowed(alert, verdict, rules, now=now):
            run.throttled.append(alert.pk)
    run.closed = _close_quiet(now=now)
    return run


def _reasons(verdict: Verdict) -> list[str]:
    return [
        name for name, on in (("ratio", verdict.by_ratio), ("capacity", verdict.by_capacity)) if on
    ]


def _alert_record(
    candidate: Candidate, verdict: Verdict, evidence: dict[str, object], *, end: datetime,
    now: datetime,
) -> tuple[AnomalyAlert, str]:  # fmt: skip
    """Open the alert of a spike, or bring the active one's evidence up to date: the alert
    and "opened", "updated", or "renewed" — a spike of an alert quiet for
    ``ANOMALY_QUIET_HOURS`` (still open, staff not yet at it): a new episode, which may be
    throttled as a new alert is."""
    figures = {
        "rate": verdict.rate,
        "baseline": verdict.baseline,
        "ratio": verdict.ratio,
        "capacity_share": verdict.capacity_share,
        "reasons": _reasons(verdict),
        "evidence": evidence,
        "last_seen_at": now,
        "window_end": end,
    }
    active = AnomalyAlert.objects.filter(
        tenant_id=candidate.tenant_id,
        channel_id=candidate.channel_id,
        status__in=AnomalyAlert.ACTIVE,
    )
    with transaction.atomic():
        alert = active.select_for_update().first()
        if alert is None:
            try:
                with transaction.atomic():
                    alert = AnomalyAlert.objects.create(
                        tenant_id=candidate.tenant_id,
                        channel_id=candidate.channel_id,
                        opened_at=now,
                        peak_rate=verdict.rate,
                        **figures,
                    )
            except IntegrityError:  # another run opened it meanwhile: update that one
                alert = active.select_for_update().get()
            else:
                audit_record(
                    actor=None, action="anomaly.open", tenant=alert.tenant, obj=alert,
                    before=None, after=alert_snapshot(alert), reason="Anomaly watch", now=now,
                )  # fmt: skip
                return alert, "opened"
        quiet_since = now - timedelta(hours=settings.ANOMALY_QUIET_HOURS)
        renewed = alert.last_seen_at < quiet_since
        for name, value in figures.items():
            setattr(alert, name, value)
        alert.peak_rate = max(alert.peak_rate, verdict.rate)
        alert.save(update_fields=[*figures, "peak_rate"])
        return alert, "renewed" if renewed else "updated"


def auto_throttle_allowed(*, tenant: Tenant, channel: Channel, now: datetime) -> bool:
    """Whether a spike may be throttled before staff look: the watch's setting is on and
    the tenant's rule in force restricts or suspends past its limit."""
    if not settings.ANOMALY_AUTO_THROTTLE:
        return False
    return effective_rule(tenant=tenant, channel=channel, at=now).action in AUTO_THROTTLE_ACTIONS


def _throttle_if_allowed(
    alert: AnomalyAlert, verdict: Verdict, rules: Rules, *, now: datetime
) -> bool:
    tenant, channel = alert.tenant, alert.channel
    if not auto_throttle_allowed(tenant=tenant, channel=channel, now=now):
        return False
    if restrictions_in_force(tenant=tenant, at=now, channel=channel):
        return False  # already throttled or suspended by staff: theirs stands
    alert_throttle(
        alert, units=throttle_units(verdict, rules),
        duration=timedelta(hours=settings.ANOMALY_THROTTLE_HOURS),
        reason=f"Anomaly watch, alert #{alert.pk}: {alert.rate} units in the hour to "
        f"{alert.window_end:%Y-%m-%d %H:%M} UTC, {alert.ratio:.1f}× normal ({alert.baseline:.0f})",
        actor=None, now=now,
    )  # fmt: skip
    return True


def _close_quiet(*, now: datetime) -> list[int]:
    """Close confirmed or extended alerts not seen for ``ANOMALY_QUIET_HOURS`` whose
    throttle is over. Open alerts wait for staff, however quiet: staff see every alert."""
    quiet_since = now - timedelta(hours=settings.ANOMALY_QUIET_HOURS)
    closed = []
    for alert in AnomalyAlert.objects.filter(
        status__in=[AnomalyAlert.Status.CONFIRMED, AnomalyAlert.Status.EXTENDED],
        last_seen_at__lt=quiet_since,
    ).select_related("restriction", "tenant"):
        if throttle_in_force(alert, now=now) is not None:
            continue
        with transaction.atomic():
            if not AnomalyAlert.objects.filter(pk=alert.pk, status=alert.status).update(
                status=AnomalyAlert.Status.CLOSED, closed_at=now
            ):
                continue  # staff acted meanwhile
            audit_record(
                actor=None, action="anomaly.close", tenant=alert.tenant, obj=alert,
                before={"status": alert.status}, after={"status": AnomalyAlert.Status.CLOSED},
                reason=f"Quiet for {settings.ANOMALY_QUIET_HOURS:g} hours", now=now,
            )  # fmt: skip
        closed.append(alert.pk)
    return closed
