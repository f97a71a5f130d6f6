"""Anomaly alerts: a tenant × channel whose rate departs from its own pattern or takes too
much of the channel's capacity (policy § 2), opened by the watch
(``policies.services.anomaly``) and worked by staff."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from creditguard.tenancy import TenantScopedManager
from metering.models import Channel
from policies.models.rules import Restriction
from tenants.models import Tenant


class AnomalyAlert(models.Model):
    """One episode of a spike. The watch opens it and, while the spike lasts, brings its
    evidence up to date (at most one active alert per tenant × channel); staff confirm it
    (keeping or applying a throttle), extend its throttle, or lift it (a false alarm, or
    enough); the watch closes it once the rate has been normal for a while and its throttle
    has ended."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CONFIRMED = "confirmed", "Confirmed"
        EXTENDED = "extended", "Extended"
        LIFTED = "lifted", "Lifted"
        CLOSED = "closed", "Closed"

    ACTIVE = (Status.OPEN, Status.CONFIRMED, Status.EXTENDED)

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(help_text="The last run of the watch that saw the spike.")
    window_end = models.DateTimeField(help_text="End of the trailing hour last judged.")
    rate = models.BigIntegerField(help_text="Units in the trailing hour.")
    baseline = models.FloatField(help_text="Normal units per hour at this hour of the week.")
    ratio = models.FloatField(help_text="Rate ÷ normal.")
    capacity_share = models.FloatField(
        null=True, blank=True, help_text="Rate ÷ the channel's capacity per hour."
    )
    peak_rate = models.BigIntegerField(help_text="The highest rate seen while active.")
    reasons = models.JSONField(default=list, help_text="'ratio', 'capacity' or both.")
    evidence = models.JSONField(
        default=dict, help_text="The chart: units per hour of the last hours beside normal."
    )
    restriction = models.ForeignKey(
        Restriction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acted_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True, help_text="Staff's last reason (internal).")

    objects = TenantScopedManager["AnomalyAlert"]()

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel"],
                condition=models.Q(status__in=["open", "confirmed", "extended"]),
                name="anomaly_alert_one_active_per_channel",
            )
        ]
        indexes = [models.Index(fields=["status", "opened_at"], name="anomaly_alert_queue")]

    def __str__(self) -> str:
        return f"{self.tenant} · {self.channel} · {self.ratio:.0f}× normal"
