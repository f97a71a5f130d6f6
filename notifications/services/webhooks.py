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
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import InvalidInput, NotFound, input_error
from notifications.crypto import secret_encrypt, secret_rotate
from notifications.models import Notification, PlatformEvent, WebhookEndpoint
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


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes that embed an IPv4 address in their last 32 bits and reach it.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class AddressRefused(Exception):
    """The host may not receive webhooks; the message says why."""


def _embedded_ipv4(address: IPAddress) -> list[IPAddress]:
    """The IPv4 addresses an IPv6 address leads to: IPv4-mapped, 6to4, Teredo (server and
    client), NAT64 and IPv4-compatible forms."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    embedded: list[IPAddress] = []
    if address.ipv4_mapped:
        embedded.append(address.ipv4_mapped)
    if address.sixtofour:
        embedded.append(address.sixtofour)
    if address.teredo:
        embedded.extend(address.teredo)
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def address_refused(address: str) -> str | None:
    """Why an IP address may not receive webhooks, or None. Only globally routable
    unicast addresses may: not private, shared (CGNAT, where cloud metadata services
    live), loopback, link-local, documentation, benchmarking, reserved or multicast, nor
    an IPv6 form that leads to such an IPv4 address."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"{address} is not an IP address"
    for candidate in [parsed, *_embedded_ipv4(parsed)]:
        if not candidate.is_global or candidate.is_multicast:
            return f"a non-public address ({parsed})"
    return None


def webhook_host_resolve(*, host: str, port: int) -> list[str]:
    """Resolve ``host`` once and vet every address it resolves to; the delivery connects
    to these addresses and no other (pinned), so DNS that changes between the check and
    the connection (rebinding) cannot send it elsewhere. Raises ``AddressRefused`` if the
    host does not resolve or any of its addresses is not public (unless
    ``WEBHOOK_ALLOW_PRIVATE_ADDRESSES``)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise AddressRefused(f"{host} does not resolve") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise AddressRefused(f"{host} does not resolve")
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        for address in addresses:
            refused = address_refused(address)
            if refused:
                raise AddressRefused(f"{host} resolves to {refused}")
    return addresses


def webhook_port(url: str) -> int:
    """The port of a validated webhook URL (its scheme's default if none is given)."""
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def validate_webhook_url(url: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("A URL is required.", errors=[_url_error("required")])
    url = url.strip()
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # e.g. a bracketed host that is not an IPv6 address
        hostname = None
    if not hostname or parts.scheme not in {"https", "http"}:
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
    try:
        port = webhook_port(url)
        if parts.port == 0:
            raise ValueError("port 0")
    except ValueError:
        raise InvalidInput(
            "The port is out of range.", errors=[_url_error("port out of range")]
        ) from None
    try:
        webhook_host_resolve(host=hostname, port=port)
    except AddressRefused as refused:
        raise InvalidInput(f"Refused: {refused}.", errors=[_url_error(str(refused))]) from None
    return url


def _url_error(detail: str) -> dict[str, str]:
    return input_error(["url"], detail)


def webhook_endpoints_owned(*, tenant: Tenant | None) -> QuerySet[WebhookEndpoint]:
    """The endpoints of a tenant, or with ``tenant`` None the platform's (the billing
    system's, registered with a platform key): neither ever reaches the other's."""
    if tenant is None:
        return WebhookEndpoint.objects.filter(tenant__isnull=True)
    return WebhookEndpoint.objects.for_tenant(tenant)


def _kinds_validate(*, tenant: Tenant | None, kinds: list[str]) -> list[str]:
    """A tenant's endpoint subscribes to notification kinds, a platform endpoint to
    platform event types; empty means all of them."""
    known, name = (
        (PlatformEvent.Type.values, "event types")
        if tenant is None
        else (Notification.Kind.values, "notification kinds")
    )
    unknown = sorted(set(kinds) - set(known))
    if unknown:
        # A kind of the other family is known, only not here: say which family fits.
        hint = (
            (
                " Platform endpoints take platform event types: "
                if tenant is None
                else " Tenant endpoints take notification kinds: "
            )
            + ", ".join(sorted(known))
            + "."
        )
        raise InvalidInput(
            f"Unknown {name}: {', '.join(unknown)}.{hint}",
            errors=[
                input_error(["kinds", index], f"unknown: {kind}")
                for index, kind in enumerate(kinds)
                if kind in unknown
            ],
        )
    return sorted(set(kinds))


@transaction.atomic
def webhook_endpoint_create(
    *,
    tenant: Tenant | None,
    url: str,
    kinds: list[str] | None = None,
    actor: User | None = None,
    now: datetime | None = None,
) -> WebhookEndpoint:
    """Register an endpoint of ``tenant``, or with ``tenant`` None a platform endpoint
    (platform events of every tenant, ``kinds`` naming event types); its secret is
    returned once, on the created object. Audited (``webhook_endpoint.create``: the URL
    and kinds, never the secret)."""
    now = now or timezone.now()
    url = validate_webhook_url(url)
    kinds = _kinds_validate(tenant=tenant, kinds=kinds or [])
    if (
        webhook_endpoints_owned(tenant=tenant).filter(deleted_at__isnull=True).count()
        >= settings.WEBHOOK_ENDPOINTS_PER_TENANT
    ):
        raise InvalidInput(f"At most {settings.WEBHOOK_ENDPOINTS_PER_TENANT} endpoints per tenant.")
    endpoint = WebhookEndpoint.objects.create(
        public_id=uuid.uuid4(), tenant=tenant, url=url,
        secret_encrypted=secret_encrypt(webhook_secret_new()),
        kinds=kinds, created_at=now,
    )  # fmt: skip
    audit_record(
        actor=actor, action="webhook_endpoint.create", tenant=tenant, obj=endpoint, before=None,
        after={"url": url, "kinds": endpoint.kinds}, reason="", now=now,
    )  # fmt: skip
    return endpoint


def webhook_endpoint_of(*, tenant: Tenant | None, public_id: uuid.UUID) -> WebhookEndpoint:
    """The tenant's endpoint (the platform's, with ``tenant`` None) not deleted, locked
    for the change; another tenant's or the platform's, a deleted or an unknown one is
    ``NotFound`` alike. Call it inside a transaction."""
    endpoint = (
        webhook_endpoints_owned(tenant=tenant)
        .select_for_update()
        .filter(public_id=public_id, deleted_at__isnull=True)
        .first()
    )
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


@transaction.atomic
def webhook_endpoint_update(
    *,
    tenant: Tenant | None,
    public_id: uuid.UUID,
    url: str | None = None,
    kinds: list[str] | None = None,
    actor: User | None = None,
    now: datetime | None = None,
) -> WebhookEndpoint:
    """Change an endpoint's URL and/or the kinds it wants (``None``: unchanged; an empty
    list: all), validated as at creation; the secret stays. Deliveries planned from the
    commit on follow the new kinds, and every send, retries included, goes to the URL in
    force when it is sent. Audited (``webhook_endpoint.update``, before and after)."""
    now = now or timezone.now()
    endpoint = webhook_endpoint_of(tenant=tenant, public_id=public_id)
    before = {"url": endpoint.url, "kinds": endpoint.kinds}
    if url is not None:
        endpoint.url = validate_webhook_url(url)
    if kinds is not None:
        endpoint.kinds = _kinds_validate(tenant=tenant, kinds=kinds)
    endpoint.save(update_fields=["url", "kinds"])
    audit_record(
        actor=actor, action="webhook_endpoint.update", tenant=tenant, obj=endpoint,
        before=before, after={"url": endpoint.url, "kinds": endpoint.kinds}, reason="", now=now,
    )  # fmt: skip
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(
    *,
    tenant: Tenant | None,
    public_id: uuid.UUID,
    actor: User | None = None,
    now: datetime | None = None,
) -> None:
    """Stop sending to an endpoint; its pending deliveries are cancelled. Audited."""
    now = now or timezone.now()
    endpoint = webhook_endpoint_of(tenant=tenant, public_id=public_id)
    endpoint.deleted_at = now
    endpoint.active = False
    endpoint.save(update_fields=["deleted_at", "active"])
    endpoint.deliveries.filter(status="pending").update(status="cancelled")
    audit_record(
        actor=actor, action="webhook_endpoint.delete", tenant=tenant, obj=endpoint,
        before={"url": endpoint.url}, after=None, reason="", now=now,
    )  # fmt: skip


@transaction.atomic
def webhook_endpoint_secret_rotate(
    *,
    tenant: Tenant | None,
    public_id: uuid.UUID,
    actor: User | None = None,
    now: datetime | None = None,
) -> str:
    """Give an endpoint a new signing secret and return it, once (it is stored only
    encrypted). Every delivery signed from the commit on, retries of older messages
    included, is signed with the new secret only: the receiver switches when it is told.
    Audited (``webhook_endpoint.rotate_secret``, never the secret). Concurrent rotations
    serialize on the endpoint's row; the last one's secret is the one in force."""
    now = now or timezone.now()
    endpoint = webhook_endpoint_of(tenant=tenant, public_id=public_id)
    secret = webhook_secret_new()
    endpoint.secret_encrypted = secret_encrypt(secret)
    endpoint.save(update_fields=["secret_encrypted"])
    audit_record(
        actor=actor, action="webhook_endpoint.rotate_secret", tenant=tenant, obj=endpoint,
        before=None, after={"url": endpoint.url}, reason="", now=now,
    )  # fmt: skip
    return secret


def webhook_secrets_rotate() -> int:
    """Re-encrypt every endpoint's secret with the first key of ``WEBHOOK_SECRET_KEYS``;
    how many were re-encrypted. Each row is written by a conditional update on the token
    it read, so running beside endpoint creation or a second rotation loses nothing."""
    rotated = 0
    rows = WebhookEndpoint.objects.values_list("pk", "secret_encrypted")
    for pk, token in rows.order_by("pk").iterator(chunk_size=500):
        rotated += WebhookEndpoint.objects.filter(pk=pk, secret_encrypted=token).update(
            secret_encrypted=secret_rotate(token)
        )
    return rotated
