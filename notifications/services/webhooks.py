"""Webhook endpoints and Standard Webhooks signatures (https://www.standardwebhooks.com)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import uuid
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from creditguard.errors import InvalidInput, NotFound
from notifications.models import Notification, WebhookEndpoint
from tenants.models import Tenant

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of the scheme, not a secret


def webhook_secret_new() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def webhook_sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``
    keyed with the base64-decoded part of the ``whsec_`` secret."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def address_refused(host: str) -> str | None:
    """Why ``host`` may not receive webhooks (it resolves to a private, loopback,
    link-local, reserved or multicast address), or None. Checked when an endpoint is
    added and again before each delivery (DNS can change in between)."""
    if settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        return None
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return f"{host} does not resolve"
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        ):
            return f"{host} resolves to a non-public address ({address})"
    return None


def validate_webhook_url(url: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("A URL is required.", errors=[_url_error("required")])
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise InvalidInput(
            "The URL must be an absolute http(s) URL.", errors=[_url_error("not an http(s) URL")]
        )
    if parts.scheme == "http" and not settings.WEBHOOK_ALLOW_HTTP:
        raise InvalidInput("Webhook URLs must use https.", errors=[_url_error("https required")])
    if parts.username or parts.password:
        raise InvalidInput(
            "Credentials in the URL are not allowed.", errors=[_url_error("no credentials")]
        )
    if len(url) > 500:
        raise InvalidInput("The URL is too long.", errors=[_url_error("at most 500 characters")])
    refused = address_refused(parts.hostname)
    if refused:
        raise InvalidInput(f"Refused: {refused}.", errors=[_url_error(refused)])
    return url


def _url_error(detail: str) -> dict[str, str]:
    return {"pointer": "/url", "field": "url", "detail": detail}


@transaction.atomic
def webhook_endpoint_create(
    *, tenant: Tenant, url: str, kinds: list[str] | None = None, now: datetime | None = None
) -> WebhookEndpoint:
    """Register an endpoint; its secret is returned once, on the created object."""
    url = validate_webhook_url(url)
    kinds = kinds or []
    unknown = sorted(set(kinds) - set(Notification.Kind.values))
    if unknown:
        raise InvalidInput(
            f"Unknown notification kinds: {', '.join(unknown)}.",
            errors=[
                {"pointer": "/kinds", "field": "kinds", "detail": f"unknown: {', '.join(unknown)}"}
            ],
        )
    if (
        WebhookEndpoint.objects.for_tenant(tenant).filter(deleted_at__isnull=True).count()
        >= settings.WEBHOOK_ENDPOINTS_PER_TENANT
    ):
        raise InvalidInput(f"At most {settings.WEBHOOK_ENDPOINTS_PER_TENANT} endpoints per tenant.")
    return WebhookEndpoint.objects.create(
        public_id=uuid.uuid4(), tenant=tenant, url=url, secret=webhook_secret_new(),
        kinds=sorted(set(kinds)), created_at=now or timezone.now(),
    )  # fmt: skip


@transaction.atomic
def webhook_endpoint_delete(*, tenant: Tenant, public_id: str, now: datetime | None = None) -> None:
    """Stop sending to an endpoint; its pending deliveries are cancelled."""
    try:
        key = uuid.UUID(str(public_id))
    except ValueError:
        raise NotFound("No such webhook endpoint.") from None
    endpoint = (
        WebhookEndpoint.objects.for_tenant(tenant)
        .filter(public_id=key, deleted_at__isnull=True)
        .first()
    )
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    endpoint.deleted_at = now or timezone.now()
    endpoint.active = False
    endpoint.save(update_fields=["deleted_at", "active"])
    endpoint.deliveries.filter(status="pending").update(status="cancelled")
