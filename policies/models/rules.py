"""Limit rules and their terms (versioned per tenant × channel, cohort defaults) and staff
restrictions."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from creditguard.tenancy import TenantScopedManager
from metering.models import Channel
from tenants.models import Tenant

DEFAULT_THRESHOLDS = [50, 80, 90, 100]


def default_thresholds() -> list[int]:
    return list(DEFAULT_THRESHOLDS)


class Action(models.TextChoices):
    """What happens past the included credits (policy § 5)."""

    NOTIFY_ONLY = "notify_only", "Notify only (staff decide on fees)"
    CHARGE_OVERAGE = "charge_overage", "Charge overage by the fee schedule"
    RESTRICT = "restrict", "Restrict to a windowed cap"
    SUSPEND = "suspend", "Suspend the channel"


class Window(models.TextChoices):
    HOUR = "hour", "per hour"
    DAY = "day", "per day"


class CarryOver(models.TextChoices):
    FORGIVE = "forgive", "Forgive at reset"
    CARRY = "carry", "Carry into the next period"


class RuleTerms(models.Model):
    """The terms a limit rule and a cohort default share."""

    included_units = models.BigIntegerField(validators=[MinValueValidator(0)])
    warning_thresholds = models.JSONField(default=default_thresholds)
    hard_limit = models.BigIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Units beyond the available credits that may still be used; 0 = none, "
        "empty = no ceiling.",
    )
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.NOTIFY_ONLY)
    restrict_units = models.BigIntegerField(
        null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="For 'restrict': units allowed per window past the limit.",
    )  # fmt: skip
    restrict_window = models.CharField(max_length=8, choices=Window.choices, blank=True)
    carry_over = models.CharField(
        max_length=8, choices=CarryOver.choices, default=CarryOver.FORGIVE
    )

    class Meta:
        abstract = True


class CohortDefault(RuleTerms):
    """Terms a new tenant of an industry × size band starts with (blank = any)."""

    industry = models.CharField(max_length=32, choices=Tenant.Industry.choices, blank=True)
    size_band = models.CharField(max_length=16, choices=Tenant.SizeBand.choices, blank=True)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["industry", "size_band", "channel"], name="cohort_default_unique"
            )
        ]

    def __str__(self) -> str:
        industry = self.get_industry_display() if self.industry else "any industry"
        size = self.get_size_band_display() if self.size_band else "any size"
        return f"{industry} × {size} · {self.channel.name}"


class LimitRule(RuleTerms):
    """One version of a tenant × channel's limit rule. A change is a new version;
    old versions stay. The rule in force is the highest version whose
    ``effective_from`` has come."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="limit_rules")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    version = models.PositiveIntegerField()
    effective_from = models.DateTimeField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField()
    created_at = models.DateTimeField()

    objects = TenantScopedManager["LimitRule"]()

    class Meta:
        ordering = ["tenant", "channel", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "version"], name="limit_rule_unique_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} · {self.channel.name} · v{self.version}"


class Restriction(models.Model):
    """A staff restriction of a channel (or the whole tenant when ``channel`` is empty):
    a windowed cap (``throttle``) or a suspension, from ``starts_at`` until ``ends_at``
    (empty = permanent) unless lifted. ``reason`` is internal (the audit trail);
    ``customer_reason`` is what the tenant is sent."""

    class Kind(models.TextChoices):
        THROTTLE = "throttle", "Throttle (windowed cap)"
        SUSPEND = "suspend", "Suspend"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="restrictions")
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    limit_units = models.BigIntegerField(null=True, blank=True)
    window = models.CharField(max_length=8, choices=Window.choices, blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(help_text="Internal: kept in the audit trail, never sent.")
    customer_reason = models.TextField(
        blank=True, help_text="Sent to the tenant with the restriction, in its words."
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lift_reason = models.TextField(blank=True)

    objects = TenantScopedManager["Restriction"]()

    class Meta:
        indexes = [
            models.Index(
                fields=["tenant", "starts_at"],
                name="restriction_unlifted",
                condition=models.Q(lifted_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        scope = self.channel.name if self.channel_id and self.channel else "all channels"
        return f"{self.tenant} · {scope} · {self.get_kind_display().lower()}"
