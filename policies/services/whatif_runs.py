"""Apply a large what-if in the background (issue 13): ``whatif_start`` applies a scope of
at most ``WHATIF_BACKGROUND_THRESHOLD`` changing tenants at once, as ``whatif_apply``;
a larger one becomes a ``WhatIfRun`` (with an audit row) and the ``policies.whatif_run``
task, sent after the commit, which ``whatif_run`` carries out in chunks of
``WHATIF_CHUNK_SIZE`` tenants, one transaction each (the task for about half the workers'
soft time limit, then it sends itself again), committing the progress with the chunk's
writes: a task delivered again (a worker killed mid-way; acks_late) resumes at the
first tenant not done, and a tenant whose terms already are, or are already announced as,
the proposed ones is left alone. The run's last chunk writes the closing audit row. A run
that failed (an error in a chunk, which rolled back) is resumed the same way by staff
(``whatif_run_resume``), from its run's page."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from decimal import Decimal

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import Conflict
from metering.models import Channel
from policies.models import WhatIfRun
from policies.services.whatif import (
    WhatIfApplied,
    proposal_record,
    whatif_apply_preview,
    whatif_apply_rows,
    whatif_checked_preview,
)
from policies.whatif import Proposal, ProposedSchedule, Scope, TenantWhatIf, whatif_preview
from tenants.models import Tenant

logger = logging.getLogger(__name__)
WHATIF_RUN_TASK = "policies.whatif_run"


def whatif_run_continue(run_id: int) -> None:
    """Send the task again for a run its budget interrupted."""
    current_app.send_task(WHATIF_RUN_TASK, args=[run_id])


@transaction.atomic
def whatif_start(
    *, scope: Scope, proposal: Proposal, digest: str, reason: str, actor: User | None,
    now: datetime | None = None,
) -> WhatIfApplied | WhatIfRun:  # fmt: skip
    """Apply the previewed proposal at once when it changes few tenants, else queue a run
    over exactly the previewed tenants. Refused, writing nothing, as ``whatif_apply``."""
    now = now or timezone.now()
    preview = whatif_checked_preview(scope=scope, proposal=proposal, digest=digest,
                                     reason=reason, now=now)  # fmt: skip
    reason = reason.strip()
    if len(preview.changed) <= settings.WHATIF_BACKGROUND_THRESHOLD:
        return whatif_apply_preview(preview, reason=reason, actor=actor, now=now)
    record = proposal_record(scope, proposal)
    tenant_ids = [row.tenant_id for row in preview.changed]
    run = WhatIfRun.objects.create(
        actor=actor, channel=scope.channel, tenant=scope.tenant, industry=scope.industry,
        size_band=scope.size_band, scope=record["scope"][:200], changes=record["changes"],
        schedule=record["schedule"], reason=reason, tenant_ids=tenant_ids,
        total=len(tenant_ids), created_at=now,
    )  # fmt: skip
    audit_record(actor=actor, action="whatif.run.start", tenant=scope.tenant, obj=run,
                 before=None, after={**record, "run": run.pk, "total": run.total},
                 reason=reason, now=now)  # fmt: skip
    transaction.on_commit(lambda: whatif_run_continue(run.pk))
    return run


@transaction.atomic
def whatif_run_resume(
    *, run_id: int, reason: str, actor: User | None, now: datetime | None = None
) -> WhatIfRun:
    """Resume a failed run at its first tenant not done: the chunks it committed stay
    applied, the one that failed rolled back and is done again, and every tenant's row
    comes from a fresh preview (``whatif_run``), so a tenant changed meanwhile is left
    alone. Audited with the staff member's reason; the task is sent after the commit.
    Refused (``Conflict``) unless the run failed: a running one resumes by itself when its
    task is delivered again."""
    now = now or timezone.now()
    run = WhatIfRun.objects.select_for_update().get(pk=run_id)
    if run.status != WhatIfRun.Status.FAILED:
        raise Conflict(
            f"What-if run #{run.pk} is {run.get_status_display().lower()}: only a failed run "
            "can be resumed."
        )
    before = {"status": run.status, "done": run.done, "error": run.error}
    run.status, run.error, run.finished_at = WhatIfRun.Status.RUNNING, "", None
    run.save(update_fields=["status", "error", "finished_at"])
    audit_record(actor=actor, action="whatif.run.resume", tenant=run.tenant, obj=run,
                 before=before, after={"run": run.pk, "status": run.status, "done": run.done,
                                       "total": run.total},
                 reason=reason.strip(), now=now)  # fmt: skip
    transaction.on_commit(lambda: whatif_run_continue(run.pk))
    return run


def run_scope_and_proposal(run: WhatIfRun) -> tuple[Scope, Proposal]:
    channel = Channel.objects.get(pk=run.channel_id)
    tenant = None if run.tenant_id is None else Tenant.objects.get(pk=run.tenant_id)
    scope = Scope(channel=channel, tenant=tenant, industry=run.industry, size_band=run.size_band)
    schedule = None
    if run.schedule is not None:
        schedule = ProposedSchedule(
            mode=run.schedule["mode"], currency=run.schedule["currency"],
            tiers=tuple((up_to, Decimal(price)) for up_to, price in run.schedule["tiers"]),
        )  # fmt: skip
    return scope, Proposal(changes=dict(run.changes), schedule=schedule)


def whatif_run(
    run_id: int, *, chunk_size: int | None = None, budget_seconds: float | None = None
) -> WhatIfRun:
    """Carry out a queued or interrupted run (see the module): to its end, or, with a
    budget, until a chunk ends past it (the task then sends itself again, within the
    workers' time limit). Each tenant's row comes from one fresh preview of the scope; a
    tenant no longer in it, or whose terms no longer move, is counted done, left alone."""
    chunk_size = chunk_size or settings.WHATIF_CHUNK_SIZE
    started = time.monotonic()
    run = WhatIfRun.objects.get(pk=run_id)
    if run.finished:
        return run
    scope, proposal = run_scope_and_proposal(run)
    try:
        rows = {row.tenant_id: row
                for row in whatif_preview(scope=scope, proposal=proposal,
                                          now=timezone.now()).rows}  # fmt: skip
        while not _chunk(run_id, rows, scope, proposal, chunk_size):
            if budget_seconds is not None and time.monotonic() - started >= budget_seconds:
                break
    except Exception as exc:
        logger.exception("what-if run %s failed", run_id)
        WhatIfRun.objects.filter(pk=run_id).exclude(status=WhatIfRun.Status.DONE).update(
            status=WhatIfRun.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
    return WhatIfRun.objects.get(pk=run_id)


@transaction.atomic
def _chunk(run_id: int, rows: dict[int, TenantWhatIf], scope: Scope, proposal: Proposal,
           chunk_size: int) -> bool:  # fmt: skip
    """Apply the next chunk and count it, in one transaction; True when the run is over."""
    run = WhatIfRun.objects.select_for_update().get(pk=run_id)
    if run.finished:
        return True
    now = timezone.now()
    if run.status == WhatIfRun.Status.QUEUED:
        run.status, run.started_at = WhatIfRun.Status.RUNNING, now
    ids = run.tenant_ids[run.done : run.done + chunk_size]
    actor = run.actor
    todo = [rows[tenant_id] for tenant_id in ids if tenant_id in rows]
    done = whatif_apply_rows(todo, scope=scope, proposal=proposal, reason=run.reason,
                             actor=actor, now=now)  # fmt: skip
    run.done += len(ids)
    run.changed += done.changed
    run.notified += done.notified_worse + done.notified_fees
    if run.done >= run.total:
        run.status, run.finished_at = WhatIfRun.Status.DONE, now
        audit_record(actor=actor, action="whatif.run.done", tenant=scope.tenant, obj=run,
                     before=None, after={"run": run.pk, "total": run.total,
                                         "changed": run.changed, "notified": run.notified},
                     reason=run.reason, now=now)  # fmt: skip
    run.save()
    return run.status == WhatIfRun.Status.DONE
