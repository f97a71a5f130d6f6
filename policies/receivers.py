"""What policies does when a lower layer reports a change that needs the rules above it
(dependencies run downhill: tenants does not import policies)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from policies.services.restrictions import tenant_status_refresh
from policies.services.rules import limit_rules_initialize
from policies.services.welcome import tenant_welcome
from tenants.models import Tenant


def tenant_created_rules(sender: type[Tenant], *, tenant: Tenant, **kwargs: Any) -> None:
    """Version 1 of the limit rules of a tenant ``tenants.services.tenant_create`` just
    created, from its cohort's defaults, in its transaction."""
    limit_rules_initialize(tenant=tenant)


def tenant_created_welcome(sender: type[Tenant], *, tenant: Tenant, **kwargs: Any) -> None:
    """The new tenant's welcome, its notice of its terms and fees (connected after
    :func:`tenant_created_rules`, whose rules it names), in the same transaction."""
    tenant_welcome(tenant=tenant, now=tenant.created_at)


def tenant_reopened_status(sender: type[Tenant], *, tenant: Tenant, **kwargs: Any) -> None:
    """The status of a tenant ``tenants.services.tenant_reopen`` just made active again,
    brought in line with its restrictions not yet ended, in its transaction."""
    tenant_status_refresh(tenant=tenant, now=timezone.now())
