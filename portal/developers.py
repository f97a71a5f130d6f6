"""What the Developers page (``/developers/``) shows: the tenant's API keys, webhook
endpoints and their recent deliveries, and how to send usage and ask for authorization
with the tenant's own figures (its channels, its key prefix, this service's address).
A fixed number of queries whatever the history: keys, endpoints, deliveries, channels."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from metering.models import Channel
from notifications.models import Delivery, WebhookEndpoint
from notifications.selectors import webhook_deliveries_recent
from tenants.models import ApiKey, Scope, Tenant

RECENT_DELIVERIES = 20
# The scopes a tenant's key may have (billing:read serves the operator's platform keys).
TENANT_SCOPES = (Scope.USAGE_WRITE, Scope.USAGE_READ, Scope.WEBHOOKS_MANAGE)


@dataclass(frozen=True)
class Guide:
    base_url: str
    key: str  # the key to write in the examples: the tenant's prefix, the secret elided
    channels: list[Channel]
    usage_curl: str
    authorize_curl: str
    commit_curl: str


@dataclass(frozen=True)
class DevelopersPage:
    keys: list[ApiKey]
    endpoints: list[WebhookEndpoint]
    deliveries: list[Delivery]
    guide: Guide


def developers_for(*, tenant: Tenant, now: datetime | None = None) -> DevelopersPage:
    now = now or timezone.now()
    keys = list(
        ApiKey.objects.for_tenant(tenant).select_related("created_by").order_by("-created_at")
    )
    endpoints = list(
        WebhookEndpoint.objects.for_tenant(tenant)
        .filter(deleted_at__isnull=True)
        .order_by("created_at")
    )
    deliveries = list(webhook_deliveries_recent(tenant=tenant, limit=RECENT_DELIVERIES))
    channels = list(Channel.objects.filter(active=True).order_by("sort_order", "code"))
    return DevelopersPage(keys, endpoints, deliveries, _guide(tenant, keys, channels, now))


def _guide(tenant: Tenant, keys: list[ApiKey], channels: list[Channel], now: datetime) -> Guide:
    writer = next((k for k in keys if k.revoked_at is None and Scope.USAGE_WRITE in k.scopes), None)
    key = f"cg_{writer.prefix}_<secret>" if writer else "cg_<prefix>_<secret>"
    base = settings.PUBLIC_BASE_URL.rstrip("/") + "/api/v1"
    channel = channels[0].code if channels else "sms"
    occurred = now.astimezone(tenant.tzinfo).replace(microsecond=0).isoformat()
    usage = {
        "events": [
            {"id": f"{channel}-{now:%Y%m%d}-0001", "channel": channel, "quantity": 1,
             "occurred_at": occurred}
        ]
    }  # fmt: skip
    authorize = {"channel": channel, "quantity": 40, "idempotency_key": "campaign-2026-11-25"}
    return Guide(
        base_url=base,
        key=key,
        channels=channels,
        usage_curl=_curl(f"{base}/usage-events", key, usage),
        authorize_curl=_curl(f"{base}/authorizations", key, authorize),
        commit_curl=_curl(f"{base}/authorizations/<id>/commit", key, {"quantity": 38}),
    )


def _curl(url: str, key: str, body: Mapping[str, Any]) -> str:
    return (
        f"curl -X POST {url} \\\n"
        f'  -H "Authorization: Bearer {key}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d '{json.dumps(body)}'"
    )
