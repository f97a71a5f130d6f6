"""The what-if in Chromium (issue 13): from the limit rules' list, a staff member previews
fewer included SMS for a cohort, reads the counts and the table per tenant, confirms and
applies it; the page stays usable at 1280 px and 1920 px; a background run that failed is
resumed from its page (screenshots whatif-*.png in SCREENSHOTS_DIR, see
tests/admin/test_browser.py)."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.test import override_settings
from django.utils import timezone

from metering.models import Channel
from metering.services.ingest import usage_record_batch
from policies.models import LimitRule, WhatIfRun
from policies.roles import ADMINISTRATORS
from policies.services import whatif_runs
from policies.services.whatif_runs import whatif_run, whatif_start
from policies.whatif import Proposal, Scope, whatif_preview
from tests.admin.test_browser import SHOTS, browser, pytestmark, signed_in_page
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

__all__ = ["browser", "pytestmark"]


def test_staff_previews_a_cohort_and_applies_it(live_server, browser):
    shops = [
        TenantFactory.create(slug=f"shop-{n}", name=f"Shop {n}", time_zone="UTC") for n in range(3)
    ]
    TenantFactory.create(slug="bank", name="Bank", industry="finance", time_zone="UTC")
    for n, tenant in enumerate(shops):
        set_rule(tenant, "sms", included_units=2000, action="charge_overage")
        usage_record_batch(
            tenant=tenant, payload={"events": [event("u", channel="sms", quantity=600 * (n + 1))]}
        )
    user = User.objects.create_user("ada", "ada@creditguard.example", "staff-password-1",
                                    is_staff=True)  # fmt: skip
    user.groups.add(Group.objects.get(name=ADMINISTRATORS))
    SHOTS.mkdir(parents=True, exist_ok=True)

    page = signed_in_page(browser, live_server, "ada")
    page.goto(f"{live_server.url}/admin/policies/limitrule/")
    page.click("text=What-if: preview a change")
    page.select_option("#id_channel", label="SMS")
    page.select_option("#id_industry", value="retail")
    page.select_option("#id_size_band", value="50-249")
    page.fill("#id_included_units", "1000")
    page.click("input[value=Preview]")
    page.wait_for_selector("#whatif-tenants")
    text = page.inner_text("#content")
    assert "Retail × 50–249 employees · SMS: 3 tenants" in text
    assert "3 would be notified of worse terms" in text
    rows = page.locator("#whatif-tenants tbody tr")
    assert rows.count() == 3 and "2000 → 1000" in rows.first.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # no sideways page
    page.screenshot(path=str(SHOTS / "whatif-1-preview-1280.png"), full_page=True)
    page.set_viewport_size({"width": 1920, "height": 1000})
    page.screenshot(path=str(SHOTS / "whatif-2-preview-1920.png"), full_page=True)

    page.fill("#id_reason", "Retail SMS review")
    page.check("#id_confirm")
    page.click("input[value='Apply to 3 tenants']")
    page.wait_for_url("**/admin/policies/limitrule/")
    page.wait_for_selector(".messagelist")
    message = page.inner_text(".messagelist")
    assert "3 tenants changed; 3 notified of worse terms" in message
    page.screenshot(path=str(SHOTS / "whatif-3-applied.png"), full_page=True)
    assert set(LimitRule.objects.filter(author=user).values_list("tenant__slug", flat=True)) == {
        "shop-0", "shop-1", "shop-2"
    }  # fmt: skip


def test_staff_resume_a_failed_run_from_its_page(live_server, browser, monkeypatch):
    """A run that failed says why and after how many tenants; an administrator gives a
    reason and resumes it there, and the page follows the run again."""
    shops = [
        TenantFactory.create(slug=f"shop-{n}", name=f"Shop {n}", time_zone="UTC") for n in range(3)
    ]
    for tenant in shops:
        set_rule(tenant, "sms", included_units=2000, action="charge_overage")
    sms = Channel.objects.get(code="sms")
    scope = Scope(channel=sms, industry="retail", size_band="50-249")
    proposal = Proposal(changes={"included_units": 1000})
    digest = whatif_preview(scope=scope, proposal=proposal, now=timezone.now()).digest()
    user = User.objects.create_user("ada", "ada@creditguard.example", "staff-password-1",
                                    is_staff=True)  # fmt: skip
    user.groups.add(Group.objects.get(name=ADMINISTRATORS))
    with override_settings(WHATIF_BACKGROUND_THRESHOLD=1, WHATIF_CHUNK_SIZE=2):
        run = whatif_start(scope=scope, proposal=proposal, digest=digest,
                           reason="Retail SMS review", actor=user)  # fmt: skip
        real = whatif_runs.whatif_apply_rows
        calls: list[int] = []

        def second_chunk_lost(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("connection to the database lost")
            return real(*args, **kwargs)

        monkeypatch.setattr(whatif_runs, "whatif_apply_rows", second_chunk_lost)
        assert whatif_run(run.pk).status == "failed"
        monkeypatch.setattr(whatif_runs, "whatif_apply_rows", real)
    SHOTS.mkdir(parents=True, exist_ok=True)

    page = signed_in_page(browser, live_server, "ada")
    page.goto(f"{live_server.url}/admin/policies/whatifrun/")
    page.click(f"text=#{run.pk}")
    text = page.inner_text("#content")
    assert "The run stopped after 2 of 3 tenants: connection to the database lost" in text
    assert "goes on at tenant 3 of 3" in text
    page.screenshot(path=str(SHOTS / "whatif-4-run-failed.png"), full_page=True)

    page.click("input[value='Resume at tenant 3']")  # no reason yet: the browser asks for it
    assert page.locator("#id_reason").evaluate("field => field.validity.valueMissing")
    assert "Status: Failed" in page.inner_text("#whatif-run")
    assert WhatIfRun.objects.get(pk=run.pk).status == "failed"
    page.fill("#id_reason", "The database is back")
    page.click("input[value='Resume at tenant 3']")
    page.wait_for_selector(".messagelist .success")
    assert f"What-if run #{run.pk} resumed at tenant 3 of 3." in page.inner_text(".messagelist")
    assert "Status: Running" in page.inner_text("#whatif-run")
    page.screenshot(path=str(SHOTS / "whatif-5-run-resumed.png"), full_page=True)
    assert WhatIfRun.objects.get(pk=run.pk).status == "running"
