"""Limit recommendations for staff, and the published versions of the fair-use policy
with their acknowledgements."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from creditguard.tenancy import TenantScopedManager
from metering.models import Channel
from tenants.models import Tenant


class LimitRecommendation(models.Model):
    """A suggested limit for a tenant × channel (policy § 4), with its reasons: the
    tenant's own history and trend, its peer cohort's usage, and the system's load."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="recommendations")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
    computed_at = models.DateTimeField()
    current_included = models.BigIntegerField()
    suggested_included = models.BigIntegerField()
    suggested_hard_limit = models.BigIntegerField()
    own_average = models.BigIntegerField(null=True, blank=True)
    own_trend = models.FloatField(null=True, blank=True, help_text="Monthly growth, 0.12 = 12 %")
    own_p90 = models.BigIntegerField(null=True, blank=True)
    cohort = models.CharField(max_length=100)
    cohort_size = models.PositiveIntegerField()
    cohort_mean = models.BigIntegerField(null=True, blank=True)
    cohort_median = models.BigIntegerField(null=True, blank=True)
    cohort_p90 = models.BigIntegerField(null=True, blank=True)
    system_load = models.FloatField(null=True, blank=True, help_text="Share of daily capacity")
    explanation = models.TextField()
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = TenantScopedManager["LimitRecommendation"]()

    class Meta:
        ordering = ["-computed_at"]
        indexes = [
            models.Index(fields=["tenant", "channel", "-computed_at"], name="recommendation_latest")
        ]

    def __str__(self) -> str:
        return f"{self.tenant} · {self.channel.name}: {self.suggested_included:,} suggested"


class PolicyVersion(models.Model):
    """A version of the fair use policy (policy § 8). A material version is published at
    least the notice period before it takes effect and notified to every tenant."""

    label = models.CharField(max_length=20, unique=True)
    text_de = models.TextField(help_text="Markdown, German")
    text_en = models.TextField(help_text="Markdown, English")
    # What changes for the customer, in a few sentences: shown with an announced version
    # (the portal's policy page, the notice) before its text applies.
    summary_de = models.TextField(
        blank=True, help_text="What changes for the customer, a few sentences, German"
    )
    summary_en = models.TextField(
        blank=True, help_text="What changes for the customer, a few sentences, English"
    )
    effective_from = models.DateTimeField()
    material = models.BooleanField(
        default=False, help_text="A material change: notified in advance"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-effective_from"]

    def __str__(self) -> str:
        return f"Fair use policy {self.label}"

    def text(self, language: str) -> str:
        return self.text_de if language == "de" else self.text_en

    def summary(self, language: str) -> str:
        return self.summary_de if language == "de" else self.summary_en


class PolicyAcknowledgement(models.Model):
    version = models.ForeignKey(
        PolicyVersion, on_delete=models.CASCADE, related_name="acknowledgements"
    )
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="policy_acknowledgements"
    )
    acknowledged_at = models.DateTimeField()
    acknowledged_by = models.CharField(max_length=150, help_text="user or API key")

    objects = TenantScopedManager["PolicyAcknowledgement"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "tenant"], name="policy_ack_unique")
        ]

    def __str__(self) -> str:
        return f"{self.tenant} acknowledged {self.version}"
