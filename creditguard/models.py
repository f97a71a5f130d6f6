"""Kernel models: the audit trail every app writes, and operational state that belongs to
no domain app."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from creditguard.audit_labels import action_label
from creditguard.tenancy import TenantScopedManager


class WorkerHeartbeat(models.Model):
    """When a Celery worker last showed that it takes and runs tasks; one row per worker
    host name. ``/readyz`` reads the newest."""

    hostname = models.CharField(max_length=255, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class AuditEntry(models.Model):
    """One immutable row per staff or system action (who, what, before, after, why, when),
    written in the same transaction as the change."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, help_text="username, 'system' or an API key")
    action = models.CharField(max_length=64)
    tenant = models.ForeignKey(
        "tenants.Tenant",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_entries",
    )
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField()

    objects = TenantScopedManager["AuditEntry"]()

    class Meta:
        # The table keeps the name it had when the model lived in policies (the move was
        # state-only: creditguard 0002, policies 0006) and its append-only trigger.
        db_table = "policies_auditentry"
        verbose_name_plural = "audit entries"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "created_at"], name="audit_tenant_time")]

    def __str__(self) -> str:
        return f"{action_label(self.action)} by {self.actor_label}"
