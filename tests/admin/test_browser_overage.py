"""The overage queue in a real headless Chromium at 1280 px: every column, the factors
last, within the results box — no column cut off or scrolled out of sight (issue 13).
Screenshot console-overage-1280.png (SCREENSHOTS_DIR, as the other browser tests)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from metering.models import Channel
from tenants.models import Tenant
from tests.admin.test_browser import SHOTS, browser, signed_in_page  # noqa: F401 - the browser fixture
from tests.admin.test_browser_start import _scene

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_the_factors_column_is_whole_at_1280_px(live_server, browser):  # noqa: F811
    # The demo's names: a long tenant's name and channel's beside the factors.
    Tenant.objects.filter(pk=_scene()).update(name="SwiftFreight Logistics International")
    Channel.objects.filter(code="sms").update(name="Phone calls and SMS")
    billing = User.objects.create_user("bea", password="staff-password-1", is_staff=True)
    billing.groups.add(Group.objects.get(name="Billing"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = signed_in_page(browser, live_server, "bea")
    page.goto(f"{live_server.url}/admin/policies/overagecharge/?ready=yes")
    factors = page.locator("#result_list td.field-factors_summary").first
    assert "A customer for" in factors.inner_text()
    box = page.locator("#changelist .results")
    widths = box.evaluate("b => [b.scrollWidth, b.clientWidth]")
    cell = factors.bounding_box()
    frame = box.bounding_box()
    page.screenshot(path=str(SHOTS / "console-overage-1280.png"), full_page=True)
    assert cell is not None and frame is not None
    assert widths[0] <= widths[1], f"the results scroll sideways: {widths}"
    assert cell["x"] + cell["width"] <= frame["x"] + frame["width"] + 1
    assert bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))
    page.close()
