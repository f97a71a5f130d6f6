"""Channels: staff add one and it works everywhere (metering/models.py). Each change is
validated and audited in its transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import full_clean_or_refuse
from metering.models import Channel


def _state(channel: Channel) -> dict[str, Any]:
    return {f.attname: getattr(channel, f.attname) for f in Channel._meta.concrete_fields}


@transaction.atomic
def channel_save(*, channel: Channel, actor: User | None, now: datetime | None = None) -> Channel:
    """Create or change a channel, validated, audited (before and after) when it changed.
    Tenants' rule versions keep their terms; a new channel's balances open with the
    channel's default until a tenant has a rule for it."""
    now = now or timezone.now()
    current = Channel.objects.select_for_update().filter(pk=channel.pk).first()
    before = _state(current) if channel.pk is not None and current is not None else None
    full_clean_or_refuse(channel, detail="The channel is not valid.")
    channel.save()
    after = _state(channel)
    if after != before:
        audit_record(
            actor=actor, action=f"channel.{'update' if before else 'create'}", tenant=None,
            obj=channel, before=before, after=after, reason="", now=now,
        )  # fmt: skip
    return channel


@transaction.atomic
def channel_delete(*, channel: Channel, actor: User | None, now: datetime | None = None) -> None:
    """Delete a channel nothing refers to yet (balances, rules and events protect it)."""
    audit_record(
        actor=actor, action="channel.delete", tenant=None, obj=channel, before=_state(channel),
        after=None, reason="", now=now or timezone.now(),
    )  # fmt: skip
    channel.delete()
