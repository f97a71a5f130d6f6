"""A customer's request for a different limit on a channel (policy: limits are adjusted
individually on request), and the staff decision on it."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from creditguard.tenancy import TenantScopedManager
from metering.models import Channel
from policies.models.rules import LimitRule
from tenants.models import Tenant


class LimitRequest(models.Model):
    """Included credits per period a tenant asks for on a channel, with its reason and the
    volume it expects. Staff approve it (a new limit rule version, with the notice rules of
    any limit change) or decline it with a reason the customer reads; either way once.
    A tenant has at most one open request per channel."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        APPROVED = "approved", "Approved"
        DECLINED = "declined", "Declined"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="limit_requests")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    # What the customer asked for, and its included credits when it asked.
    included_units = models.BigIntegerField(validators=[MinValueValidator(0)])
    current_included_units = models.BigIntegerField()
    expected_volume = models.BigIntegerField(
        validators=[MinValueValidator(0)], help_text="Units per period the customer expects."
    )
    reason = models.TextField(help_text="The customer's reason.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField()
    # The decision.
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    customer_reason = models.TextField(
        blank=True, help_text="Sent to the customer with the decision, in its words."
    )
    approved_included_units = models.BigIntegerField(null=True, blank=True)
    rule = models.ForeignKey(
        LimitRule, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The rule version the approval wrote.",
    )  # fmt: skip
    effective_from = models.DateTimeField(
        null=True, blank=True, help_text="When the approved credits take effect."
    )

    objects = TenantScopedManager["LimitRequest"]()

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel"],
                condition=models.Q(status="open"),
                name="limit_request_one_open_per_channel",
            )
        ]
        indexes = [models.Index(fields=["tenant", "-requested_at"], name="limit_request_tenant")]

    def __str__(self) -> str:
        return f"Limit request #{self.pk} · {self.tenant} · {self.channel.name}"
