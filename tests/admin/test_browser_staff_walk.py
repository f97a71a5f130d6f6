"""One staff member's day in a real headless Chromium (Debian's), issue 13: an
Administrator reads the start page's work queues, follows the overage queue and bills a
final charge, comes back to a shorter queue, opens the anomaly alert from its queue and
confirms it with a throttle, then previews a change of SMS credits for a cohort (industry
× size band) with the what-if. Each step asserts what the person reads; the other browser
tests look at each page closer and take the screenshots."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from metering.models import Channel
from policies.models import AnomalyAlert, OverageCharge, Restriction
from policies.roles import ADMINISTRATORS
from tests.admin.test_browser import browser, signed_in_page  # noqa: F401 - the browser fixture
from tests.admin.test_browser_start import _scene
from tests.factories import TenantFactory
from tests.policies.anomaly_helpers import anomaly_alert_open

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _count(page, queue: str) -> str:
    return page.locator(f"tr.queue-{queue} td.count").inner_text()


def test_an_administrator_works_the_queues_decides_confirms_and_asks_what_if(
    live_server,
    browser,  # noqa: F811
):
    _scene()  # BrightCart's final SMS charge of last month, among three tenants
    codecraft = TenantFactory.create(slug="codecraft", name="CodeCraft Software", time_zone="UTC")
    anomaly_alert_open(codecraft, Channel.objects.get(code="sms"))
    ada = User.objects.create_user("ada", "ada@creditguard.example", "staff-password-1",
                                   is_staff=True)  # fmt: skip
    ada.groups.add(Group.objects.get(name=ADMINISTRATORS))

    page = signed_in_page(browser, live_server, "ada")

    # The start page: a charge to decide and an alert to work.
    page.wait_for_selector("tr.queue-overage")
    assert _count(page, "overage") == "1" and _count(page, "anomalies") == "1"

    # A decision: from the queue to its list, the charge selected, billed with a reason.
    page.locator("tr.queue-overage a").click()
    page.wait_for_url("**/overagecharge/**")
    rows = page.locator("#result_list > tbody > tr")  # factors are a table in the row
    assert rows.count() == 1 and "BrightCart" in rows.first.inner_text()
    rows.first.locator("input.action-select").check()
    page.select_option("select[name=action]", value="decide")
    page.click("button[name=index]")
    page.wait_for_selector("#id_decision")
    page.select_option("#id_decision", value="bill")
    page.fill("#id_reason", "Campaign month; the customer was warned twice")
    page.click("input[name=apply]")
    page.wait_for_selector(".messagelist")
    said = page.inner_text(".messagelist")
    assert "billed €26.00; BrightCart Ltd's contact was told" in said
    charge = OverageCharge.objects.get(tenant__slug="brightcart")
    assert charge.status == OverageCharge.Status.BILLED

    # Back on the start page the queue is empty; the alert is next.
    page.goto(f"{live_server.url}/admin/")
    assert _count(page, "overage") == "0"
    page.locator("tr.queue-anomalies a").click()
    page.wait_for_url("**/anomalyalert/**")
    page.locator("#result_list tbody tr").first.locator("th a").click()
    page.wait_for_selector("svg.anomaly-chart")
    page.fill("#confirm_reason", "A loop in their reminder job")
    page.click("input[name=confirm]")
    page.wait_for_selector(".messagelist")
    assert "Alert confirmed" in page.inner_text(".messagelist")
    assert AnomalyAlert.objects.get(tenant=codecraft).status == "confirmed"
    assert Restriction.objects.filter(tenant=codecraft, lifted_at__isnull=True).count() == 1

    # What-if: fewer included SMS for the retail × 50–249 cohort, previewed, not applied.
    page.goto(f"{live_server.url}/admin/policies/limitrule/")
    page.click("text=What-if: preview a change")
    page.select_option("#id_channel", label="SMS")
    page.select_option("#id_industry", value="retail")
    page.select_option("#id_size_band", value="50-249")
    page.fill("#id_included_units", "1000")
    page.click("input[value=Preview]")
    page.wait_for_selector("#whatif-tenants")
    cohort = TenantFactory._meta.model.objects.filter(industry="retail", size_band="50-249")
    rows = page.locator("#whatif-tenants tbody tr")
    assert rows.count() == cohort.count() == 4
    assert "4 would be notified of worse terms" in page.inner_text("#content")
    page.close()
