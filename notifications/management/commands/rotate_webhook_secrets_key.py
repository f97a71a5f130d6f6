"""Re-encrypt webhook signing secrets with the first key of WEBHOOK_SECRET_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from notifications.services.webhooks import webhook_secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every webhook signing secret with the first key of WEBHOOK_SECRET_KEYS. "
        "Rotation: put the new key first, run this, then remove the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = webhook_secrets_rotate()
        self.stdout.write(f"Re-encrypted {rotated} webhook secret(s) with the first key.")
