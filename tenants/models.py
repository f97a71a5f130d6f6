"""Tenants (business customers), their users and their API keys."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from functools import cached_property

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from creditguard.tenancy import TenantScopedManager


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name.")


class Tenant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RESTRICTED = "restricted", "Restricted"
        SUSPENDED = "suspended", "Suspended"
        CLOSED = "closed", "Closed"

    class Industry(models.TextChoices):
        RETAIL = "retail", "Retail"
        ECOMMERCE = "ecommerce", "E-commerce"
        HEALTHCARE = "healthcare", "Healthcare"
        FINANCE = "finance", "Finance and insurance"
        EDUCATION = "education", "Education"
        HOSPITALITY = "hospitality", "Hospitality and travel"
        LOGISTICS = "logistics", "Logistics"
        PUBLIC_SECTOR = "public_sector", "Public sector"
        SOFTWARE = "software", "Software and IT"
        OTHER = "other", "Other"

    class SizeBand(models.TextChoices):
        MICRO = "1-9", "1–9 employees"
        SMALL = "10-49", "10–49 employees"
        MEDIUM = "50-249", "50–249 employees"
        LARGE = "250-999", "250–999 employees"
        ENTERPRISE = "1000+", "1000+ employees"

    class Language(models.TextChoices):
        GERMAN = "de", "Deutsch"
        ENGLISH = "en", "English"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    industry = models.CharField(max_length=32, choices=Industry.choices, default=Industry.OTHER)
    size_band = models.CharField(max_length=16, choices=SizeBand.choices, default=SizeBand.SMALL)
    language = models.CharField(max_length=2, choices=Language.choices, default=Language.GERMAN)
    currency = models.CharField(max_length=3, default="EUR")
    time_zone = models.CharField(
        max_length=64, default="Europe/Berlin", validators=[validate_time_zone]
    )
    contact_name = models.CharField(max_length=200, blank=True)
    contact_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @cached_property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantScopedManager["Membership"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"


class Scope(models.TextChoices):
    USAGE_WRITE = "usage:write", "Write usage and ask for authorization"
    USAGE_READ = "usage:read", "Read balances, usage and notifications"
    WEBHOOKS_MANAGE = "webhooks:manage", "Manage webhook endpoints"
    BILLING_READ = "billing:read", "Read billing exports"


class ApiKey(models.Model):
    """A bearer key. Only a SHA-256 hash of the full key is stored; it is shown once.

    ``tenant`` is empty for a platform key (the operator's billing system).
    """

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager["ApiKey"]()

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        owner = self.tenant.slug if self.tenant_id and self.tenant else "platform"
        return f"{self.name} ({owner}, cg_{self.prefix}_…)"


class Invitation(models.Model):
    """An owner's invitation to join a tenant with a role, sent by e-mail as a link. Only
    the SHA-256 of the link's token is kept; it is accepted once, before it expires
    (``INVITATION_VALIDITY_DAYS``), unless revoked."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Membership.Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager["Invitation"]()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Invitation of {self.email} to {self.tenant} as {self.role}"

    def is_open(self, now: datetime) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now
