"""Staff's work on the anomaly watch's alerts (``policies.services.anomaly``): confirm an
alert (keeping its throttle or applying one), extend its throttle, or lift it (the throttle
lifted through ``restriction_lift``), each audited; and the throttle itself, applied
through ``restriction_apply`` with a reason the tenant reads in its language."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from creditguard.audit import audit_record, snapshot
from creditguard.errors import Conflict, InvalidInput
from creditguard.locale_format import number_text, percent_text
from policies.models import AnomalyAlert, Restriction, Window
from policies.services.restrictions import restriction_apply, restriction_extend, restriction_lift


def alert_snapshot(alert: AnomalyAlert) -> dict[str, object] | None:
    return snapshot(
        alert, fields=[f.name for f in AnomalyAlert._meta.fields if f.name != "evidence"]
    )


def customer_reason(*, alert: AnomalyAlert, units: int) -> str:
    """Why the tenant's channel is throttled, in the tenant's language: the rate against
    its usual one, or its share of the platform's capacity."""
    tenant, channel = alert.tenant, alert.channel
    language = tenant.language
    with translation.override(language):
        figures = {
            "channel": channel.labels()[language if language in ("de", "en") else "en"]["name"],
            "rate": number_text(alert.rate, language=language),
            "ratio": number_text(round(alert.ratio), language=language),
            "share": percent_text(round((alert.capacity_share or 0) * 100), language=language),
            "units": number_text(units, language=language),
        }
        if "ratio" in alert.reasons:
            why = _("In the last hour you sent %(rate)s units on %(channel)s, %(ratio)s times "
                    "your usual rate at this time of the week.") % figures  # fmt: skip
        else:
            why = _("In the last hour you sent %(rate)s units on %(channel)s, %(share)s of what "
                    "the platform carries on this channel.") % figures  # fmt: skip
        return (
            why
            + " "
            + _(
                "To keep the service stable for every customer, sending is limited to %(units)s "
                "units per hour for now; our staff are looking into it."
            )
            % figures
        )


def alert_throttle(
    alert: AnomalyAlert, *, units: int, duration: timedelta, reason: str, actor: User | None,
    now: datetime,
) -> Restriction:  # fmt: skip
    restriction = restriction_apply(
        tenant=alert.tenant, channel=alert.channel, kind=Restriction.Kind.THROTTLE,
        limit_units=units, window=Window.HOUR, duration=duration, reason=reason,
        customer_reason=customer_reason(alert=alert, units=units), actor=actor, now=now,
    )  # fmt: skip
    AnomalyAlert.objects.filter(pk=alert.pk).update(restriction=restriction)
    alert.restriction = restriction
    return restriction


def throttle_in_force(alert: AnomalyAlert, *, now: datetime) -> Restriction | None:
    """The alert's throttle while it holds (not lifted, not ended)."""
    restriction = alert.restriction
    if restriction is None or restriction.lifted_at is not None:
        return None
    if restriction.ends_at is not None and restriction.ends_at <= now:
        return None
    return restriction


def _locked_active(alert: AnomalyAlert) -> AnomalyAlert:
    locked = (
        AnomalyAlert.objects.select_for_update(of=("self",))
        .select_related("tenant", "channel", "restriction")
        .get(pk=alert.pk)
    )
    if locked.status not in AnomalyAlert.ACTIVE:
        raise Conflict(f"This alert is {locked.get_status_display().lower()} already.")
    return locked


def _acted(
    alert: AnomalyAlert, *, status: str, reason: str, actor: User | None, action: str,
    before: dict[str, object] | None, now: datetime,
) -> AnomalyAlert:  # fmt: skip
    alert.status, alert.note, alert.acted_by, alert.acted_at = status, reason, actor, now
    fields = ["status", "note", "acted_by", "acted_at"]
    if status == AnomalyAlert.Status.LIFTED:
        alert.closed_at = now
        fields.append("closed_at")
    alert.save(update_fields=fields)
    audit_record(
        actor=actor, action=action, tenant=alert.tenant, obj=alert, before=before,
        after=alert_snapshot(alert), reason=reason, now=now,
    )  # fmt: skip
    return alert


def _reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise InvalidInput("Staff's action on an alert needs a reason (internal).")
    return reason.strip()


@transaction.atomic
def anomaly_alert_confirm(
    *, alert: AnomalyAlert, reason: str, actor: User | None, throttle_units: int | None = None,
    duration: timedelta | None = None, now: datetime | None = None,
) -> AnomalyAlert:  # fmt: skip
    """Confirm an active alert: its throttle in force stays; without one, ``throttle_units``
    per hour for ``duration`` are applied (the tenant told why), or none when not given.
    Audited (``anomaly.confirm``)."""
    now = now or timezone.now()
    reason = _reason(reason)
    locked = _locked_active(alert)
    before = alert_snapshot(locked)
    if throttle_in_force(locked, now=now) is None and throttle_units is not None:
        if duration is None or duration <= timedelta(0):
            raise InvalidInput("A throttle needs a duration.")
        alert_throttle(
            locked, units=throttle_units, duration=duration, reason=reason, actor=actor, now=now
        )
    return _acted(
        locked, status=AnomalyAlert.Status.CONFIRMED, reason=reason, actor=actor,
        action="anomaly.confirm", before=before, now=now,
    )  # fmt: skip


@transaction.atomic
def anomaly_alert_extend(
    *, alert: AnomalyAlert, duration: timedelta, reason: str, actor: User | None,
    now: datetime | None = None,
) -> AnomalyAlert:  # fmt: skip
    """Extend the throttle of an active alert by ``duration`` from its present end (the
    tenant told the new end). An alert without a throttle in force is refused: confirm it
    with one instead. Audited (``anomaly.extend``)."""
    now = now or timezone.now()
    reason = _reason(reason)
    if duration <= timedelta(0):
        raise InvalidInput("Extend by a positive duration.")
    locked = _locked_active(alert)
    restriction = throttle_in_force(locked, now=now)
    if restriction is None or restriction.ends_at is None:
        raise Conflict("This alert has no temporary throttle in force: confirm it with one.")
    before = alert_snapshot(locked)
    locked.restriction = restriction_extend(
        restriction=restriction, until=restriction.ends_at + duration, reason=reason,
        actor=actor, now=now,
    )  # fmt: skip
    return _acted(
        locked, status=AnomalyAlert.Status.EXTENDED, reason=reason, actor=actor,
        action="anomaly.extend", before=before, now=now,
    )  # fmt: skip


@transaction.atomic
def anomaly_alert_lift(
    *, alert: AnomalyAlert, reason: str, actor: User | None, now: datetime | None = None
) -> AnomalyAlert:
    """Lift an active alert (a false alarm, or the tenant has calmed down): its throttle in
    force is lifted (the tenant told), and the alert ends. Audited (``anomaly.lift``)."""
    now = now or timezone.now()
    reason = _reason(reason)
    locked = _locked_active(alert)
    before = alert_snapshot(locked)
    restriction = throttle_in_force(locked, now=now)
    if restriction is not None:
        locked.restriction = restriction_lift(
            restriction=restriction, reason=reason, actor=actor, now=now
        )
    return _acted(
        locked, status=AnomalyAlert.Status.LIFTED, reason=reason, actor=actor,
        action="anomaly.lift", before=before, now=now,
    )  # fmt: skip
