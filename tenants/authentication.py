"""API key authentication: resolves the key and its tenant once per request."""

from __future__ import annotations

import hmac
import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from creditguard.api.throttling import limit_hit
from creditguard.client_address import client_address
from tenants.models import ApiKey, Tenant
from tenants.services import KEY_PREFIX_BYTES, hash_api_key, split_api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer cg_<prefix>_<secret>``.

    ``request.auth`` is the :class:`ApiKey`; ``request.user`` is None (machines
    have no user). One indexed query per request; ``last_used_at`` is written at
    most once a minute per key.
    """

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[None, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        raw_key = raw_key.strip()
        prefix = split_api_key(raw_key) if scheme.lower() == "bearer" and raw_key else None
        api_key, refusal = self._resolve(scheme, raw_key, prefix)
        if api_key is None:
            _throttle_failure(request, prefix)
            raise exceptions.AuthenticationFailed(refusal)
        self._touch(api_key)
        return (None, api_key)

    @staticmethod
    def _resolve(scheme: str, raw_key: str, prefix: str | None) -> tuple[ApiKey | None, str]:
        """The valid, unrevoked key, or None and why not."""
        if scheme.lower() != "bearer" or not raw_key:
            return None, "Use 'Authorization: Bearer <api key>'."
        if prefix is None or not _PREFIX.fullmatch(prefix):
            # Only a prefix a key can have reaches the database (a NUL character in the
            # header would otherwise fail inside PostgreSQL as a 500).
            return None, "The API key is malformed."
        api_key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
        if api_key is None or not hmac.compare_digest(api_key.secret_hash, hash_api_key(raw_key)):
            return None, "The API key is not valid."
        if api_key.revoked_at is not None:
            return None, "The API key has been revoked."
        return api_key, ""

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'

    @staticmethod
    def _touch(api_key: ApiKey) -> None:
        now = timezone.now()
        stale = now - timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
        if api_key.last_used_at is None or api_key.last_used_at < stale:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now


def _throttle_failure(request: Request, prefix: str | None) -> None:
    """Count a failed authentication against the client's address and, when it names a
    possible key, the key's prefix; past ``API_AUTH_FAILURES_PER_MINUTE`` in any minute of
    either, 429 with ``Retry-After`` instead of 401.

    Only failures are counted and refused: a valid key is never held back, so nobody can
    lock a customer out by sending wrong secrets with its public prefix, and valid
    requests pay no extra Redis round trip. Guessing a 192-bit secret is hopeless anyway;
    this stops scanners and broken clients from hammering authentication."""
    limit = settings.API_AUTH_FAILURES_PER_MINUTE
    if not limit:
        return
    windows = [f"creditguard:auth-failures:address:{client_address(request)}"]
    if prefix is not None and _PREFIX.fullmatch(prefix):
        windows.append(f"creditguard:auth-failures:key:{prefix}")
    wait = limit_hit(windows, limit=limit, window=60.0, feature="auth_failures")
    if wait is not None:
        raise exceptions.Throttled(
            wait,
            detail="Too many failed authentications from this address or for this key.",
        )


# Only a prefix that a key can have is counted: anything else would let a client fill
# Redis with keys of its choosing.
_PREFIX = re.compile(rf"[0-9a-f]{{{2 * KEY_PREFIX_BYTES}}}")


class HasApiKeyScopes(permissions.BasePermission):
    """The view's ``required_scopes`` must all be on the key.

    Views that serve one tenant's data set ``tenant_required = True``: a
    platform key is then refused with 403.
    """

    message = "This API key lacks a required scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            raise exceptions.NotAuthenticated("Send 'Authorization: Bearer <api key>'.")
        required: list[str] = list(getattr(view, "required_scopes", []))
        missing = [scope for scope in required if scope not in api_key.scopes]
        if missing:
            raise exceptions.PermissionDenied(
                f"This API key lacks the scope(s) {', '.join(missing)}."
            )
        if getattr(view, "tenant_required", True) and api_key.tenant_id is None:
            raise exceptions.PermissionDenied(
                "This endpoint serves one tenant; use a tenant API key, not a platform key."
            )
        return True


def request_tenant(request: Request) -> Tenant:
    """The tenant of the authenticated key (views with ``tenant_required``)."""
    api_key = request.auth
    assert isinstance(api_key, ApiKey) and api_key.tenant is not None
    return api_key.tenant


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key `cg_<prefix>_<secret>` issued by `create_api_key`.",
        }


class ApiKeyRateThrottle(BaseThrottle):
    """At most ``API_RATE_LIMIT_PER_SECOND`` requests per key in any second; past it, 429
    with ``Retry-After`` (the problem handler adds the header). 0 turns it off."""

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        limit = settings.API_RATE_LIMIT_PER_SECOND
        api_key = request.auth
        if not limit or not isinstance(api_key, ApiKey):
            return True
        self.wait_seconds = limit_hit(
            [f"creditguard:rate:{api_key.prefix}"], limit=limit, window=1.0, feature="rate_limit"
        )
        return self.wait_seconds is None

    def wait(self) -> float | None:
        return self.wait_seconds
