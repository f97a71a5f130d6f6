"""The Celery application. Configured from Django settings (``CELERY_*``).

The workers issue fills in tasks and the beat schedule; ingestion already runs
without waiting on Celery.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "creditguard.settings")

app = Celery("creditguard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
