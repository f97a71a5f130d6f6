"""A customer's own warning thresholds (the portal's alerts, like Twilio's usage
triggers)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from creditguard.tenancy import TenantScopedManager
from metering.models import Channel
from tenants.models import Tenant

# The range of a rule's warning thresholds (``policies.terms.validate_terms``): a
# customer's own thresholds may be anything a rule's may be, beyond 100 % included
# (usage past the credits, up to a hard ceiling).
ALERT_PERCENT_MIN, ALERT_PERCENT_MAX = 1, 1000


class AlertThreshold(models.Model):
    """A percentage of a channel's credits at which the tenant wants a warning besides
    its limit rule's ``warning_thresholds``. Evaluation (``policies.services.evaluate``)
    warns at both, with the same dedupe keys, so a percentage in both warns once.

    It lives in policies, not notifications: it is a term of when to warn, which policies
    decides beside the rule's thresholds; notifications, a leaf, only delivers what
    policies decided and knows neither rules nor balances. Removing one stops its
    warnings from then on; a warning sent stays sent."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alert_thresholds")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    percent = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(ALERT_PERCENT_MIN), MaxValueValidator(ALERT_PERCENT_MAX)]
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()

    objects = TenantScopedManager["AlertThreshold"]()

    class Meta:
        ordering = ["tenant", "channel", "percent"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "percent"], name="alert_threshold_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(percent__gte=ALERT_PERCENT_MIN, percent__lte=ALERT_PERCENT_MAX),
                name="alert_threshold_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} · {self.channel.name} at {self.percent} %"
