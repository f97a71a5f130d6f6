"""What policies does when a lower layer reports a change it cannot audit itself
(dependencies run downhill: tenants does not import policies)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User

from metering.models import Channel
from policies.services.audit import audit_record
from policies.services.rules import limit_rules_initialize
from tenants.models import ApiKey, Tenant


def api_key_revoked_audit(
    sender: type[ApiKey],
    *,
    api_key: ApiKey,
    actor: User | None,
    reason: str,
    now: datetime,
    **kwargs: Any,
) -> None:
    """The audit row of ``tenants.services.api_key_revoke``, in its transaction."""
    audit_record(
        actor=actor,
        action="api_key.revoke",
        tenant=api_key.tenant,
        obj=api_key,
        before={"revoked_at": None},
        after={"revoked_at": now, "prefix": api_key.prefix, "name": api_key.name},
        reason=reason,
        now=now,
    )


def tenant_changed_audit(
    sender: type[Tenant],
    *,
    tenant: Tenant,
    actor: User | None,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str,
    now: datetime,
    **kwargs: Any,
) -> None:
    """The audit row of ``tenants.services.tenant_create`` and ``tenant_update``."""
    audit_record(
        actor=actor, action=action, tenant=tenant, obj=tenant, before=before, after=after,
        reason=reason, now=now,
    )  # fmt: skip


def tenant_created_rules(sender: type[Tenant], *, tenant: Tenant, **kwargs: Any) -> None:
    """Version 1 of the limit rules of a tenant ``tenants.services.tenant_create`` just
    created, from its cohort's defaults, in its transaction."""
    limit_rules_initialize(tenant=tenant)


def channel_changed_audit(
    sender: type[Channel],
    *,
    channel: Channel,
    actor: User | None,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: datetime,
    **kwargs: Any,
) -> None:
    """The audit row of ``metering.services.channels.channel_save`` and ``channel_delete``."""
    audit_record(
        actor=actor, action=action, tenant=None, obj=channel, before=before, after=after,
        reason="", now=now,
    )  # fmt: skip
