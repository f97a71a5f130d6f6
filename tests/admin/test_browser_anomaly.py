"""An anomaly alert in a real headless Chromium (Debian's): Support opens the alerts, reads
the spike on its chart, and confirms it with a throttle; screenshots anomaly-*.png at 1280
and 1920 px (SCREENSHOTS_DIR, as the other browser tests)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from metering.models import Channel
from policies.models import AnomalyAlert, Restriction
from tests.admin.test_browser import SHOTS, browser, signed_in_page  # noqa: F401 - the browser fixture
from tests.factories import TenantFactory
from tests.policies.anomaly_helpers import anomaly_alert_open

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_support_confirms_an_alert_with_a_throttle(live_server, browser):  # noqa: F811
    tenant = TenantFactory.create(slug="codecraft", name="CodeCraft Software", time_zone="UTC")
    alert = anomaly_alert_open(tenant, Channel.objects.get(code="sms"))
    support = User.objects.create_user("sue", password="staff-password-1", is_staff=True)
    support.groups.add(Group.objects.get(name="Support"))
    SHOTS.mkdir(parents=True, exist_ok=True)

    page = signed_in_page(browser, live_server, "sue")
    page.goto(f"{live_server.url}/admin/policies/anomalyalert/")
    row = page.locator("#result_list tbody tr").first
    assert "CodeCraft Software" in row.inner_text() and "10× normal" in row.inner_text()
    page.screenshot(path=str(SHOTS / "anomaly-1-list-1280.png"), full_page=True)

    row.locator("th a").click()
    page.wait_for_selector("svg.anomaly-chart")
    assert page.locator("svg.anomaly-chart rect.bar").count() == 48
    page.screenshot(path=str(SHOTS / "anomaly-2-alert-1280.png"), full_page=True)
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.screenshot(path=str(SHOTS / "anomaly-2-alert-1920.png"), full_page=True)

    page.fill("#confirm_reason", "A loop in their reminder job; agreed with Support")
    assert page.input_value("#confirm_throttle_units") == "600"
    page.click("input[name=confirm]")
    page.wait_for_selector(".messagelist")
    said = page.locator(".messagelist").inner_text()
    assert "Alert confirmed and CodeCraft Software's SMS throttled to 600 units per hour" in said
    assert "the customer has been sent why" in said
    page.screenshot(path=str(SHOTS / "anomaly-3-confirmed-1920.png"), full_page=True)
    alert.refresh_from_db()
    assert alert.status == "confirmed"
    assert Restriction.objects.get(tenant=tenant).limit_units == 600
    assert AnomalyAlert.objects.count() == 1
