"""What-if in the background (issue 13): past ``WHATIF_BACKGROUND_THRESHOLD`` changing
tenants, applying queues a run, and the task changes exactly the previewed tenants in
chunks, with their notices and progress; a task delivered again after a crash mid-way
resumes where the last committed chunk ended and writes nothing twice."""

from __future__ import annotations

from collections import Counter

import pytest
import time_machine
from django.test import override_settings

from creditguard.models import AuditEntry
from metering.models import Channel
from notifications.models import Notification
from policies import tasks
from policies.models import FeeSchedule, LimitRule, WhatIfRun
from policies.services import whatif_runs
from policies.services.whatif import WhatIfApplied, whatif_apply_rows
from policies.services.whatif_runs import run_scope_and_proposal, whatif_run, whatif_start
from policies.tasks import whatif_run_task
from policies.whatif import Proposal, ProposedSchedule, Scope, whatif_preview
from tests.policies.test_whatif import CHANGES, NOW, RETAIL, SMALL, TIERS
from tests.policies.test_whatif import cohort as cohort  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def at_now():
    with time_machine.travel(NOW, tick=False):
        yield


def start(proposal: Proposal) -> tuple[WhatIfRun, list]:
    scope = Scope(channel=Channel.objects.get(code="sms"), industry=RETAIL, size_band=SMALL)
    preview = whatif_preview(scope=scope, proposal=proposal, now=NOW)
    run = whatif_start(scope=scope, proposal=proposal, digest=preview.digest(),
                       reason="Retail review", actor=None)  # fmt: skip
    assert isinstance(run, WhatIfRun)
    return run, preview.rows


def written(since: set[int]) -> Counter[str]:
    return Counter(LimitRule.objects.exclude(pk__in=since).values_list("tenant__slug", flat=True))


def told(kind: str) -> Counter[str]:
    return Counter(
        Notification.objects.filter(kind=kind, created_at__gte=NOW).values_list(
            "tenant__slug", flat=True
        )
    )


@override_settings(WHATIF_BACKGROUND_THRESHOLD=5, WHATIF_CHUNK_SIZE=4)
def test_a_large_cohort_runs_in_chunks_and_twice_writes_nothing_more(cohort):  # noqa: F811
    rules_before = set(LimitRule.objects.values_list("pk", flat=True))
    proposal = Proposal(changes=CHANGES, schedule=ProposedSchedule("graduated", "EUR", TIERS))
    run, rows = start(proposal)
    assert (run.status, run.total, run.done) == ("queued", 14, 0)
    assert not written(rules_before)  # nothing in the request itself
    assert AuditEntry.objects.filter(action="whatif.run.start").count() == 1
    assert run_scope_and_proposal(run)[1] == proposal  # recorded as proposed

    run = whatif_run(run.pk)
    changing = {row.slug for row in rows if row.changes_terms}
    worse = {row.slug for row in rows if row.worse}
    assert (run.status, run.done, run.total, run.changed) == ("done", 14, 14, 14)
    assert run.notified == len(worse) + 14
    assert run.started_at is not None and run.finished_at is not None
    versions = written(rules_before)  # a change may write a version now and one later
    assert set(versions) == changing and changing
    assert told("limit_changed") == Counter(worse)
    assert told("fee_schedule_notice") == Counter(t.slug for t in cohort)
    assert Counter(FeeSchedule.objects.filter(tenant__isnull=False, created_at=NOW)
                   .values_list("tenant__slug", flat=True)) == Counter(t.slug for t in cohort)  # fmt: skip
    assert not versions.keys() & {"bank", "big-shop"}
    end = AuditEntry.objects.get(action="whatif.run.done")
    assert end.after == {"run": run.pk, "total": 14, "changed": 14, "notified": run.notified}

    # Delivered again (acks_late): the run is over, nothing is written.
    notifications, schedules = Notification.objects.count(), FeeSchedule.objects.count()
    assert whatif_run_task(run.pk) == 14
    assert written(rules_before) == versions
    assert (Notification.objects.count(), FeeSchedule.objects.count()) == (notifications, schedules)
    assert AuditEntry.objects.filter(action__startswith="whatif.run").count() == 2


@override_settings(WHATIF_BACKGROUND_THRESHOLD=5, WHATIF_CHUNK_SIZE=4)
def test_a_crash_mid_way_resumes_after_the_last_chunk_committed(cohort, monkeypatch):  # noqa: F811
    rules_before = set(LimitRule.objects.values_list("pk", flat=True))
    proposal = Proposal(changes=CHANGES, schedule=ProposedSchedule("volume", "EUR", TIERS))
    run, rows = start(proposal)
    calls = []

    def crash_on_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker lost")
        return whatif_apply_rows(*args, **kwargs)

    monkeypatch.setattr(whatif_runs, "whatif_apply_rows", crash_on_the_second_chunk)
    run = whatif_run(run.pk)
    assert (run.status, run.done, run.changed) == ("failed", 4, 4)
    assert "worker lost" in run.error
    first_chunk = {row.slug for row in rows[:4]}  # the preview's order is the run's
    after_crash = written(rules_before)
    assert set(after_crash) <= first_chunk  # the second chunk rolled back
    assert told("fee_schedule_notice") == Counter(first_chunk)
    # A killed worker leaves the run running; the task delivered again resumes.
    WhatIfRun.objects.filter(pk=run.pk).update(status="running", error="", finished_at=None)
    run = whatif_run(run.pk)
    assert (run.status, run.done, run.changed) == ("done", 14, 14)
    changing = {row.slug for row in rows if row.changes_terms}
    worse = {row.slug for row in rows if row.worse}
    versions = written(rules_before)
    assert set(versions) == changing
    assert {slug: versions[slug] for slug in after_crash} == after_crash  # not again
    assert told("limit_changed") == Counter(worse)  # once each
    assert told("fee_schedule_notice") == Counter(t.slug for t in cohort)
    assert run.notified == len(worse) + 14


@override_settings(WHATIF_BACKGROUND_THRESHOLD=5, WHATIF_CHUNK_SIZE=4)
def test_tenants_written_without_their_progress_are_left_alone(cohort):  # noqa: F811
    """Should a chunk's writes stand without its count, the terms already in force or
    announced make the tenant's row change nothing: not written or told twice."""
    rules_before = set(LimitRule.objects.values_list("pk", flat=True))
    run, rows = start(Proposal(changes=CHANGES))
    scope, proposal = run_scope_and_proposal(run)
    first = [row for row in rows if row.changes_terms][:6]
    whatif_apply_rows(first, scope=scope, proposal=proposal, reason="x", actor=None, now=NOW)
    assert WhatIfRun.objects.get(pk=run.pk).done == 0
    before = written(rules_before)
    run = whatif_run(run.pk)
    changing = {row.slug for row in rows if row.changes_terms}
    versions = written(rules_before)
    assert set(versions) == changing
    assert {slug: versions[slug] for slug in before} == before  # not again
    assert told("limit_changed") == Counter(row.slug for row in rows if row.worse)
    assert (run.status, run.done, run.changed) == ("done", run.total, run.total - 6)


@override_settings(WHATIF_BACKGROUND_THRESHOLD=14)
def test_a_scope_at_the_threshold_applies_at_once(cohort):  # noqa: F811
    scope = Scope(channel=Channel.objects.get(code="sms"), industry=RETAIL, size_band=SMALL)
    proposal = Proposal(changes=CHANGES, schedule=ProposedSchedule("graduated", "EUR", TIERS))
    preview = whatif_preview(scope=scope, proposal=proposal, now=NOW)
    done = whatif_start(scope=scope, proposal=proposal, digest=preview.digest(), reason="r",
                        actor=None)  # fmt: skip
    assert isinstance(done, WhatIfApplied) and done.changed == 14
    assert not WhatIfRun.objects.exists()


@override_settings(
    WHATIF_BACKGROUND_THRESHOLD=5, WHATIF_CHUNK_SIZE=4, CELERY_TASK_SOFT_TIME_LIMIT=0
)
def test_a_task_past_its_budget_sends_itself_again(cohort, monkeypatch):  # noqa: F811
    """Within the workers' soft time limit: a task stops after the chunk that spends its
    budget (here none: one chunk each) and the next carries on."""
    sent: list[int] = []
    monkeypatch.setattr(tasks, "whatif_run_continue", sent.append)
    run, _ = start(Proposal(changes=CHANGES))
    assert whatif_run_task(run.pk) == 4
    assert sent == [run.pk] and WhatIfRun.objects.get(pk=run.pk).status == "running"
    while sent:
        whatif_run_task(sent.pop())
    run.refresh_from_db()
    assert (run.status, run.done, run.total) == ("done", 14, 14)
