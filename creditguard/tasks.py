"""Kernel tasks: the workers' heartbeat, sent by beat every WORKER_HEARTBEAT_SECONDS."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from creditguard.services import worker_heartbeat_record


@shared_task(name="creditguard.worker_heartbeat", bind=True, ignore_result=True)
def worker_heartbeat_task(self: Any) -> None:
    # Run by whichever worker takes it: proof that beat, the broker and a worker work.
    worker_heartbeat_record(hostname=self.request.hostname or "unknown")
