"""The console's what-if past ``WHATIF_BACKGROUND_THRESHOLD`` (issue 13): applying lands
on the run's page, which shows done / total, changed and notified and refreshes itself
until the run ends, then says what it did; the runs' list links each run's page; only
who may apply starts one; another run's number answers 404."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import reverse

from creditguard.models import AuditEntry
from policies.models import LimitRule, WhatIfRun
from policies.roles import ADMINISTRATORS
from policies.services import whatif_runs
from policies.services.whatif_runs import whatif_run
from tests.admin.test_roles import signed_in
from tests.admin.test_whatif import APPLY, preview, query, text
from tests.admin.test_whatif import shops as shops  # noqa: F401 (the fixture)
from tests.factories import TenantFactory


@pytest.fixture(autouse=True)
def small_threshold():
    with override_settings(WHATIF_BACKGROUND_THRESHOLD=1):
        yield


def apply(client, digest: str = "0" * 32):
    return client.post(reverse(APPLY), {**query(included_units="500"), "digest": digest,
                                        "reason": "Retail review", "confirm": "on"})  # fmt: skip


def test_applying_a_large_scope_lands_on_its_progress(shops):  # noqa: F811
    user, client = signed_in(ADMINISTRATORS)
    shown = preview(client, included_units="500")
    assert "applying runs in the background" in text(shown)
    rules = LimitRule.objects.count()
    response = apply(client, shown.context_data["apply_form"].initial["digest"])
    run = WhatIfRun.objects.get()
    page_url = reverse("admin:policies_whatifrun_progress", args=[run.pk])
    assert response.status_code == 302 and response["Location"] == page_url
    assert (run.actor, run.total, run.status) == (user, 2, "queued")
    assert LimitRule.objects.count() == rules  # the worker's to write

    page = client.get(page_url)
    assert page.status_code == 200
    assert '<meta http-equiv="refresh" content="2">' in page.content.decode()
    assert "Status: Queued" in text(page) and "Done: 0 / 2 tenants (0 %)" in text(page)
    assert client.get(page_url.replace("progress/", "progress.json")).json() == {
        "status": "queued",
        "total": 2,
        "done": 0,
        "changed": 0,
        "notified": 0,
        "error": "",
    }

    whatif_run(run.pk)
    page = client.get(page_url)
    assert 'http-equiv="refresh"' not in page.content.decode()
    assert "Done: 2 / 2 tenants (100 %); changed: 2; notified: 2." in text(page)
    assert "What-if applied to Retail × 50–249 employees · SMS: 2 tenants changed" in text(page)
    assert set(LimitRule.objects.filter(author=user).values_list("tenant__slug", flat=True)) == {
        "alpha",
        "beta",
    }
    runs = client.get(reverse("admin:policies_whatifrun_changelist"))
    assert runs.status_code == 200 and f'href="{page_url}"' in runs.content.decode()
    assert "2 / 2" in text(runs)


def test_a_stale_preview_starts_no_run(shops):  # noqa: F811
    _, client = signed_in(ADMINISTRATORS)
    digest = preview(client, included_units="500").context_data["apply_form"].initial["digest"]
    TenantFactory.create(slug="newcomer", name="Newcomer")  # joins the cohort meanwhile
    response = apply(client, digest)
    assert response.status_code == 400 and "preview again" in text(response)
    assert not WhatIfRun.objects.exists()


@pytest.mark.parametrize("role", ["Support", "Billing"])
def test_other_roles_start_no_run_but_see_them(shops, role: str):  # noqa: F811
    admin_user, admin_client = signed_in(ADMINISTRATORS)
    digest = (
        preview(admin_client, included_units="500").context_data["apply_form"].initial["digest"]
    )
    _, client = signed_in(role)
    assert apply(client, digest).status_code == 403
    assert not WhatIfRun.objects.exists()
    apply(admin_client, digest)
    run = WhatIfRun.objects.get()
    url = reverse("admin:policies_whatifrun_progress", args=[run.pk])
    assert client.get(url).status_code == 200
    assert (
        client.get(reverse("admin:policies_whatifrun_progress", args=[run.pk + 1])).status_code
        == 404
    )
    assert client.get(reverse("admin:policies_whatifrun_changelist")).status_code == 200


def test_a_failed_run_is_resumed_from_its_page_by_who_may_apply_it(
    shops,
    monkeypatch,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    user, client = signed_in(ADMINISTRATORS)
    apply(
        client, preview(client, included_units="500").context_data["apply_form"].initial["digest"]
    )
    run = WhatIfRun.objects.get()

    def lost(*args, **kwargs):
        raise RuntimeError("database connection lost")

    monkeypatch.setattr(whatif_runs, "whatif_apply_rows", lost)
    run = whatif_run(run.pk)
    assert (run.status, run.done) == ("failed", 0)
    monkeypatch.undo()
    page_url = reverse("admin:policies_whatifrun_progress", args=[run.pk])
    resume_url = reverse("admin:policies_whatifrun_resume", args=[run.pk])

    page = client.get(page_url)
    assert "The run stopped after 0 of 2 tenants: database connection lost" in text(page)
    assert f'action="{resume_url}"' in page.content.decode()
    assert "Resume at tenant 1" in page.content.decode()

    # Support sees the failure but may not resume it.
    _, support = signed_in("Support")
    assert f'action="{resume_url}"' not in support.get(page_url).content.decode()
    assert support.post(resume_url, {"reason": "retry"}).status_code == 403

    # The reason is required: the page again, saying so, and nothing resumed.
    refused = client.post(resume_url, {"reason": " "})
    assert refused.status_code == 400 and "This field is required." in text(refused)
    assert WhatIfRun.objects.get().status == "failed"

    with django_capture_on_commit_callbacks() as sent:
        resumed = client.post(resume_url, {"reason": "The database is back"})
    assert resumed.status_code == 302 and resumed["Location"] == page_url
    assert len(sent) == 1  # the task, after the commit
    run.refresh_from_db()
    assert (run.status, run.error, run.finished_at) == ("running", "", None)
    entry = AuditEntry.objects.get(action="whatif.run.resume")
    assert (entry.actor, entry.reason) == (user, "The database is back")
    assert entry.before["status"] == "failed" and entry.after["status"] == "running"
    page = client.get(page_url)
    assert f"What-if run #{run.pk} resumed at tenant 1 of 2." in text(page)
    assert 'http-equiv="refresh"' in page.content.decode()

    run = whatif_run(run.pk)  # the task
    assert (run.status, run.done, run.changed) == ("done", 2, 2)
    # Done: nothing to resume, said so rather than done again.
    again = client.post(resume_url, {"reason": "again"}, follow=True)
    assert "only a failed run can be resumed" in text(again)
    assert AuditEntry.objects.filter(action="whatif.run.resume").count() == 1
