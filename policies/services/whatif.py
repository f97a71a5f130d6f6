"""Apply a what-if (``policies.whatif``) in one step: the limit change for every tenant in
scope through ``limit_rule_set`` (worse terms after the notice, the tenant told) and the
proposed fee schedule as each tenant's own through ``fee_schedule_create`` and
``fee_schedule_notify`` (pricing after ``FEE_NOTICE_DAYS``, the tenant told), in one
transaction, with one audit row for the whole."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import Conflict, InvalidInput, input_error
from policies.models import FeeSchedule, LimitRule
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.rules import limit_rule_set
from policies.whatif import Proposal, Scope, WhatIf, whatif_preview
from tenants.models import Tenant


@dataclass(frozen=True)
class WhatIfApplied:
    preview: WhatIf
    changed: int  # tenants whose terms or fee schedule change
    notified_worse: int  # of them, told of worse limit terms (they take effect after notice)
    notified_fees: int  # told of the new fee schedule


@transaction.atomic
def whatif_apply(
    *, scope: Scope, proposal: Proposal, digest: str, reason: str, actor: User | None,
    now: datetime | None = None,
) -> WhatIfApplied:  # fmt: skip
    """Apply ``proposal`` to the tenants of the preview whose ``digest`` is given. When the
    scope or what the proposal does to it has changed since (a tenant joined the cohort, a
    term was changed meanwhile), nothing is written: ``Conflict``, preview again."""
    now = now or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Applying a what-if needs a reason.",
                           errors=[input_error(["reason"], "required")])  # fmt: skip
    if not proposal.changes and proposal.schedule is None:
        raise InvalidInput("Propose a term or a fee schedule to apply.")
    preview = whatif_preview(scope=scope, proposal=proposal, now=now)
    if preview.digest() != digest:
        raise Conflict("The tenants in scope or their terms changed since the preview: "
                       "preview again before applying.")  # fmt: skip
    tenants = Tenant.objects.in_bulk([row.tenant_id for row in preview.changed])
    channel = scope.channel
    anchor: LimitRule | FeeSchedule | None = None
    changed = notified_worse = notified_fees = 0
    for row in preview.changed:
        tenant = tenants[row.tenant_id]
        if row.changes_terms:
            terms = {name: new for name, (_, new) in row.current.changed(row.proposed).items()}
            change = limit_rule_set(tenant=tenant, channel=channel, reason=f"What-if: {reason}",
                                    actor=actor, now=now, **terms)  # fmt: skip
            anchor = change.rule
            notified_worse += change.worsens
        if proposal.schedule is not None:
            schedule = fee_schedule_create(
                channel=channel, tenant=tenant, name=f"What-if {now:%Y-%m-%d}: {reason}"[:100],
                tiers=list(proposal.schedule.tiers), currency=proposal.schedule.currency,
                mode=proposal.schedule.mode, reason=reason, actor=actor, now=now,
            )  # fmt: skip
            anchor = schedule
            notified_fees += fee_schedule_notify(schedule=schedule, tenants=[tenant],
                                                 actor=actor, now=now)  # fmt: skip
        changed += 1
    if anchor is not None:
        audit_record(
            actor=actor, action="whatif.apply",
            tenant=scope.tenant, obj=anchor, before=None,
            after={"scope": scope.describe(), "channel": channel.code,
                   "changes": proposal.changes,
                   "schedule": None if proposal.schedule is None else {
                       "mode": proposal.schedule.mode, "currency": proposal.schedule.currency,
                       "tiers": [[u, str(p)] for u, p in proposal.schedule.tiers]},
                   "tenants": [row.slug for row in preview.changed], "changed": changed,
                   "notified_worse": notified_worse, "notified_fees": notified_fees},
            reason=reason, now=now,
        )  # fmt: skip
    return WhatIfApplied(preview=preview, changed=changed, notified_worse=notified_worse,
                         notified_fees=notified_fees)  # fmt: skip
