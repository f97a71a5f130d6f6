"""A what-if applied in the background (issue 13): a cohort too large to change in one
request is changed by the ``policies.whatif_run`` task in chunks, and this row says how
far it got."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from metering.models import Channel
from tenants.models import Tenant


class WhatIfRun(models.Model):
    """Who applied which proposal to which scope, the tenants to change (fixed when the
    preview was confirmed) and the progress over them: ``done`` of ``total`` processed,
    committed with each chunk's writes, so a task run again resumes where it stopped."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    industry = models.CharField(max_length=32, blank=True)
    size_band = models.CharField(max_length=16, blank=True)
    scope = models.CharField(max_length=200)  # as described when applied
    changes = models.JSONField(default=dict)  # the terms, as ``limit_rule_set`` takes them
    schedule = models.JSONField(null=True, blank=True)  # mode, currency, [[up_to, price]]
    reason = models.TextField()
    tenant_ids = models.JSONField(default=list)  # the preview's tenants to change, in order
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)  # of tenant_ids, processed
    changed = models.PositiveIntegerField(default=0)
    notified = models.PositiveIntegerField(default=0)  # told of worse terms or a fee schedule
    error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "what-if run"

    def __str__(self) -> str:
        return f"What-if run {self.pk}: {self.scope}"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
