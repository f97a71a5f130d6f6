"""Kernel models: operational state that belongs to no domain app."""

from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """When a Celery worker last showed that it takes and runs tasks; one row per worker
    host name. ``/readyz`` reads the newest."""

    hostname = models.CharField(max_length=255, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} at {self.seen_at:%Y-%m-%d %H:%M:%S}"
