"""Staff settings of the fair-use rules: cohort defaults (the terms new tenants start
with), top-up packs and tenants' automatic top-ups. Each change is validated and audited
(before and after) in its transaction; none notifies, since none changes a tenant's terms
by itself (a tenant keeps its rule versions; an automatic top-up is the tenant's own
opt-in, and a pack applies only when offered)."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from django.contrib.auth.models import User
from django.db import models, transaction
from django.utils import timezone

from creditguard.audit import audit_record, snapshot
from creditguard.errors import InvalidInput, full_clean_or_refuse, input_error
from policies.models import AutoTopUp, CohortDefault, TopUpPack
from tenants.models import Tenant

Setting = TypeVar("Setting", CohortDefault, TopUpPack, AutoTopUp)


def _save(
    instance: Setting, *, action: str, tenant: Tenant | None, actor: User | None, now: datetime
) -> Setting:
    """Validate and save a setting (created or changed), auditing it when it changed.
    The row is locked first, so two changes of one setting are audited in order."""
    model = type(instance)
    current = model._default_manager.select_for_update().filter(pk=instance.pk).first()
    before = snapshot(current) if instance.pk is not None and current is not None else None
    full_clean_or_refuse(instance, detail="The setting is not valid.")
    instance.save()
    after = snapshot(instance)
    if after != before:
        audit_record(
            actor=actor, action=f"{action}.{'update' if before else 'create'}", tenant=tenant,
            obj=instance, before=before, after=after, reason="", now=now,
        )  # fmt: skip
    return instance


def _delete(
    instance: models.Model,
    *,
    action: str,
    tenant: Tenant | None,
    actor: User | None,
    now: datetime,
) -> None:
    audit_record(
        actor=actor, action=f"{action}.delete", tenant=tenant, obj=instance,
        before=snapshot(instance), after=None, reason="", now=now,
    )  # fmt: skip
    instance.delete()


@transaction.atomic
def cohort_default_save(
    *, cohort_default: CohortDefault, actor: User | None, now: datetime | None = None
) -> CohortDefault:
    """Create or change a cohort default. Only tenants created from now on start with it."""
    return _save(
        cohort_default, action="cohort_default", tenant=None, actor=actor,
        now=now or timezone.now(),
    )  # fmt: skip


@transaction.atomic
def cohort_default_delete(
    *, cohort_default: CohortDefault, actor: User | None, now: datetime | None = None
) -> None:
    _delete(
        cohort_default, action="cohort_default", tenant=None, actor=actor,
        now=now or timezone.now(),
    )  # fmt: skip


@transaction.atomic
def topup_pack_save(
    *, pack: TopUpPack, actor: User | None, now: datetime | None = None
) -> TopUpPack:
    """Create or change a pack. Offers already made keep their units and price."""
    return _save(pack, action="topup_pack", tenant=None, actor=actor, now=now or timezone.now())


@transaction.atomic
def topup_pack_delete(*, pack: TopUpPack, actor: User | None, now: datetime | None = None) -> None:
    _delete(pack, action="topup_pack", tenant=None, actor=actor, now=now or timezone.now())


@transaction.atomic
def auto_topup_save(
    *, auto_topup: AutoTopUp, actor: User | None, now: datetime | None = None
) -> AutoTopUp:
    """Create or change a tenant's automatic top-up, audited on the tenant's trail. Its
    pack must be of its channel, and on sale while it is on; it buys at least once a
    period (switch it off to buy none)."""
    problems = []
    pack = auto_topup.pack
    if pack.channel_id != auto_topup.channel_id or (auto_topup.enabled and not pack.active):
        problems.append({"field": "pack", "detail": "not a pack on sale on this channel"})
    if auto_topup.max_per_period < 1:
        problems.append({"field": "max_per_period", "detail": "at least 1"})
    if problems:
        raise InvalidInput(
            "The automatic top-up is not valid.",
            errors=[input_error([p["field"]], p["detail"]) for p in problems],
        )
    return _save(
        auto_topup, action="auto_topup", tenant=auto_topup.tenant, actor=actor,
        now=now or timezone.now(),
    )  # fmt: skip


@transaction.atomic
def auto_topup_delete(
    *, auto_topup: AutoTopUp, actor: User | None, now: datetime | None = None
) -> None:
    _delete(
        auto_topup, action="auto_topup", tenant=auto_topup.tenant, actor=actor,
        now=now or timezone.now(),
    )  # fmt: skip
