"""The audit trail: one immutable row per staff or system action, written by any app in
the transaction of its change (the kernel, so that every layer can write it)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from creditguard.models import AuditEntry

if TYPE_CHECKING:
    from tenants.models import Tenant


def snapshot(
    instance: models.Model | None, fields: list[str] | None = None
) -> dict[str, Any] | None:
    """A JSON-safe copy of a model's concrete fields (or the named ones)."""
    if instance is None:
        return None
    data: dict[str, Any] = {}
    for model_field in instance._meta.concrete_fields:
        if fields is not None and model_field.name not in fields:
            continue
        data[model_field.name] = getattr(instance, model_field.attname)
    return json_safe(data)


def json_safe(data: Any) -> Any:
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def audit_record(
    *,
    actor: User | None,
    action: str,
    tenant: Tenant | None,
    obj: models.Model,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str,
    now: datetime,
    actor_label: str | None = None,
) -> AuditEntry:
    """Write the audit row of an action. Call it inside the transaction of the change."""
    return AuditEntry.objects.create(
        actor=actor,
        actor_label=actor_label or (actor.get_username() if actor else "system"),
        action=action,
        tenant=tenant,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        before=json_safe(before) if before is not None else None,
        after=json_safe(after) if after is not None else None,
        reason=reason,
        created_at=now,
    )
