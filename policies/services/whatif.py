"""Apply a what-if (``policies.whatif``) in one step: the limit change for every tenant in
scope through ``limit_rule_set`` (worse terms after the notice, the tenant told) and the
proposed fee schedule as each tenant's own through ``fee_schedule_create`` and
``fee_schedule_notify`` (pricing after ``FEE_NOTICE_DAYS``, the tenant told), in one
transaction, with one audit row for the whole. A cohort larger than
``WHATIF_BACKGROUND_THRESHOLD`` is applied by a worker task instead
(``policies.services.whatif_runs``), with the same writes per tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import Conflict, InvalidInput, input_error
from policies.models import FeeSchedule, LimitRule
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.rules import limit_rule_set
from policies.whatif import Proposal, Scope, TenantWhatIf, WhatIf, whatif_preview
from tenants.models import Tenant


@dataclass(frozen=True)
class WhatIfApplied:
    preview: WhatIf
    changed: int  # tenants whose terms or fee schedule change
    notified_worse: int  # of them, told of worse limit terms (they take effect after notice)
    notified_fees: int  # told of the new fee schedule


def whatif_checked_preview(
    *, scope: Scope, proposal: Proposal, digest: str, reason: str, now: datetime
) -> WhatIf:
    """The preview to apply: refused when the reason or the proposal is missing, and when
    the scope or what the proposal does to it has changed since the preview whose
    ``digest`` is given (a tenant joined the cohort, a term was changed meanwhile):
    ``Conflict``, preview again."""
    if not (reason or "").strip():
        raise InvalidInput("Applying a what-if needs a reason.",
                           errors=[input_error(["reason"], "required")])  # fmt: skip
    if not proposal.changes and proposal.schedule is None:
        raise InvalidInput("Propose a term or a fee schedule to apply.")
    preview = whatif_preview(scope=scope, proposal=proposal, now=now)
    if preview.digest() != digest:
        raise Conflict("The tenants in scope or their terms changed since the preview: "
                       "preview again before applying.")  # fmt: skip
    return preview


def proposal_record(scope: Scope, proposal: Proposal) -> dict[str, Any]:
    """The proposal as an audit row (and a background run) records it."""
    return {"scope": scope.describe(), "channel": scope.channel.code,
            "changes": proposal.changes,
            "schedule": None if proposal.schedule is None else {
                "mode": proposal.schedule.mode, "currency": proposal.schedule.currency,
                "tiers": [[u, str(p)] for u, p in proposal.schedule.tiers]}}  # fmt: skip


@dataclass
class RowsApplied:
    changed: int = 0
    notified_worse: int = 0
    notified_fees: int = 0
    anchor: LimitRule | FeeSchedule | None = None


def whatif_apply_rows(
    rows: list[TenantWhatIf], *, scope: Scope, proposal: Proposal, reason: str,
    actor: User | None, now: datetime,
) -> RowsApplied:  # fmt: skip
    """Write the proposal for these rows of a preview (in the caller's transaction): the
    limit change where it ``changes_terms`` — a tenant whose terms already are, or are
    already announced as, the proposed ones is left alone — and the fee schedule."""
    tenants = Tenant.objects.in_bulk([row.tenant_id for row in rows])
    channel = scope.channel
    done = RowsApplied()
    for row in rows:
        tenant = tenants[row.tenant_id]
        if row.changes_terms:
            terms = {name: new for name, (_, new) in row.current.changed(row.proposed).items()}
            change = limit_rule_set(tenant=tenant, channel=channel, reason=f"What-if: {reason}",
                                    actor=actor, now=now, **terms)  # fmt: skip
            done.anchor = change.rule
            done.notified_worse += change.worsens
        elif proposal.schedule is None:
            continue
        if proposal.schedule is not None:
            schedule = fee_schedule_create(
                channel=channel, tenant=tenant, name=f"What-if {now:%Y-%m-%d}: {reason}"[:100],
                tiers=list(proposal.schedule.tiers), currency=proposal.schedule.currency,
                mode=proposal.schedule.mode, reason=reason, actor=actor, now=now,
            )  # fmt: skip
            done.anchor = schedule
            done.notified_fees += fee_schedule_notify(schedule=schedule, tenants=[tenant],
                                                      actor=actor, now=now)  # fmt: skip
        done.changed += 1
    return done


@transaction.atomic
def whatif_apply(
    *, scope: Scope, proposal: Proposal, digest: str, reason: str, actor: User | None,
    now: datetime | None = None,
) -> WhatIfApplied:  # fmt: skip
    """Apply ``proposal`` to the tenants of the preview whose ``digest`` is given, in one
    transaction; nothing when the preview has grown stale (``whatif_checked_preview``)."""
    now = now or timezone.now()
    preview = whatif_checked_preview(scope=scope, proposal=proposal, digest=digest,
                                     reason=reason, now=now)  # fmt: skip
    return whatif_apply_preview(preview, reason=reason, actor=actor, now=now)


def whatif_apply_preview(preview: WhatIf, *, reason: str, actor: User | None,
                         now: datetime) -> WhatIfApplied:  # fmt: skip
    """Apply a checked preview at once (the caller's transaction), one audit row."""
    reason = reason.strip()
    scope, proposal = preview.scope, preview.proposal
    done = whatif_apply_rows(preview.changed, scope=scope, proposal=proposal, reason=reason,
                             actor=actor, now=now)  # fmt: skip
    if done.anchor is not None:
        audit_record(
            actor=actor, action="whatif.apply",
            tenant=scope.tenant, obj=done.anchor, before=None,
            after={**proposal_record(scope, proposal),
                   "tenants": [row.slug for row in preview.changed], "changed": done.changed,
                   "notified_worse": done.notified_worse, "notified_fees": done.notified_fees},
            reason=reason, now=now,
        )  # fmt: skip
    return WhatIfApplied(preview=preview, changed=done.changed,
                         notified_worse=done.notified_worse,
                         notified_fees=done.notified_fees)  # fmt: skip
