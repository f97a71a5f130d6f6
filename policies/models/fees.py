"""Fee schedules (with their tiers and notices) and the overage charges they price."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from creditguard.locale_format import money_text, period_text
from creditguard.tenancy import TenantScopedManager
from metering.models import BillingPeriod, Channel
from policies.models.rules import Action
from tenants.models import Tenant


class FeeSchedule(models.Model):
    """Prices for units beyond the included credits of a channel: a global default
    (``tenant`` empty) or a tenant's override. It prices a tenant's units only from the
    moment it took effect for that tenant (:class:`FeeScheduleNotice`). ``author`` and
    ``created_at`` are set by the service, never typed."""

    class Mode(models.TextChoices):
        GRADUATED = "graduated", "Graduated (each tier prices its own units)"
        VOLUME = "volume", "Volume (the reached tier prices all units)"

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="fee_schedules"
    )
    name = models.CharField(max_length=100)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.GRADUATED)
    currency = models.CharField(max_length=3, default="EUR")
    effective_from = models.DateTimeField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["channel", "-effective_from"]

    def __str__(self) -> str:
        owner = f", {self.tenant}" if self.tenant_id else ""
        return f"{self.name} ({self.channel.name}{owner}, {self.currency})"


class FeeTier(models.Model):
    """Units beyond the included credits up to ``up_to`` (empty: no end) at ``unit_price``."""

    schedule = models.ForeignKey(FeeSchedule, on_delete=models.CASCADE, related_name="tiers")
    up_to = models.BigIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    unit_price = models.DecimalField(
        max_digits=14, decimal_places=6, validators=[MinValueValidator(Decimal(0))]
    )

    class Meta:
        ordering = ["schedule", models.F("up_to").asc(nulls_last=True)]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "up_to"], name="fee_tier_unique_edge")
        ]

    def __str__(self) -> str:
        up_to = f"up to {self.up_to:,} units" if self.up_to else "beyond"
        return f"{up_to} at {self.unit_price} a unit"


class FeeScheduleNotice(models.Model):
    """The moment a tenant was notified of a fee schedule, and the moment the schedule
    takes effect for it: the schedule's ``effective_from``, but no earlier than
    ``FEE_NOTICE_DAYS`` after the notice (fixed when notified, so a later change of the
    setting moves nobody's date)."""

    schedule = models.ForeignKey(FeeSchedule, on_delete=models.CASCADE, related_name="notices")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    notified_at = models.DateTimeField()
    effective_at = models.DateTimeField()

    objects = TenantScopedManager["FeeScheduleNotice"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["schedule", "tenant"], name="fee_notice_unique")
        ]

    def __str__(self) -> str:
        return f"{self.schedule.name} · {self.tenant} · from {self.effective_at:%Y-%m-%d}"


class OverageCharge(models.Model):
    """The overage of one tenant × channel × period and its decision (policy § 7).

    Kept current while the period is open; finalised when it closes; decided once
    by staff (bill, waive, partly waive) or automatically billed below a threshold.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending decision"
        BILLED = "billed", "Billed"
        WAIVED = "waived", "Waived"
        PARTLY_WAIVED = "partly_waived", "Partly waived"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="overage_charges")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=16, choices=Action.choices)
    units = models.BigIntegerField(default=0)
    # Of ``units``, those carried into the next period's included credits when the period
    # closed (rule ``carry``): a unit is carried or charged, never both.
    carried_units = models.BigIntegerField(default=0)
    schedule = models.ForeignKey(
        FeeSchedule, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    currency = models.CharField(max_length=3, default="EUR")
    finalized_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    billed_amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    waived_amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision_reason = models.TextField(blank=True)
    factors = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField()

    objects = TenantScopedManager["OverageCharge"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "period"], name="overage_charge_unique"
            ),
        ]

    def __str__(self) -> str:
        """Reads "BrightCart · SMS · November 2026 — €3.25" (select_related: tenant, channel,
        period)."""
        period = period_text(self.period.label, language="en")
        amount = money_text(self.amount, self.currency, language="en")
        return f"{self.tenant} · {self.channel.name} · {period} — {amount}"
