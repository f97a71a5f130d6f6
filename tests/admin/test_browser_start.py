"""The start page and a tenant's page in a real headless Chromium (Debian's): a Billing
staff member reads the work queues, follows the overage queue to its filtered list, and
opens a tenant's summary with its usage charts; both pages at 1280 and 1920 px without
sideways scrolling, screenshots console-start-*.png and console-tenant-*.png
(SCREENSHOTS_DIR, as the other browser tests)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from metering.models import Channel
from metering.services.ingest import usage_record_batch
from metering.services.periods import period_bounds
from policies.models import TopUpPack
from policies.services.close import periods_close_due
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.limit_requests import limit_request_create
from policies.services.topups import topup_offer_create
from tests.admin.test_browser import SHOTS, browser, signed_in_page  # noqa: F401 - the browser fixture
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _scene() -> int:
    """Three tenants: BrightCart with a year of SMS and last month over its credits (a
    final charge), a limit request, an offer and worse terms announced; Nordlicht near its
    limit; Praxis calm. Returns BrightCart's id."""
    now = timezone.now()
    sms = Channel.objects.get(code="sms")
    bright = TenantFactory.create(slug="brightcart", name="BrightCart Ltd", time_zone="UTC")
    near = TenantFactory.create(slug="nordlicht", name="Nordlicht Möbel GmbH", time_zone="UTC")
    calm = TenantFactory.create(slug="praxis", name="Praxis Dr. Weber", time_zone="UTC")
    long_ago = now - timedelta(days=400)
    schedule = fee_schedule_create(
        channel=sms, name="SMS overage", tiers=[(None, "0.065")], effective_from=long_ago,
        now=long_ago,
    )  # fmt: skip
    fee_schedule_notify(schedule=schedule, now=long_ago)
    starts = [period_bounds(tenant=bright, at=now).starts_at]
    for _ in range(11):
        starts.append(period_bounds(tenant=bright, at=starts[-1] - timedelta(days=1)).starts_at)
    for index, start in enumerate(reversed(starts[1:])):
        at = start + timedelta(days=5)
        used = 1200 + 80 * index if index < 10 else 2400  # growing, then past the limit
        usage_record_batch(
            tenant=bright,
            payload={"events": [event(f"m{index}", quantity=used, occurred_at=at.isoformat())]},
            now=at + timedelta(minutes=1),
        )
    periods_close_due(now=now)
    for tenant, used in ((bright, 1500), (near, 1700), (calm, 300)):  # of 2,000 included
        usage_record_batch(tenant=tenant, payload={"events": [event("now", quantity=used)]})
    limit_request_create(
        tenant=bright, channel=sms, included_units=3000, expected_volume=2800,
        reason="Spring campaign", requested_by=None,
    )  # fmt: skip
    pack = TopUpPack.objects.create(channel=sms, units=500, price=Decimal("29.00"))
    topup_offer_create(tenant=bright, pack=pack, actor=None)
    set_rule(bright, "sms", included_units=1800, effective_from=now + timedelta(days=20))
    return bright.pk


def test_billing_reads_the_queues_and_a_tenants_summary_at_two_widths(live_server, browser):  # noqa: F811
    bright = _scene()
    billing = User.objects.create_user("bea", password="staff-password-1", is_staff=True)
    billing.groups.add(Group.objects.get(name="Billing"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 1920):
        page = signed_in_page(browser, live_server, "bea", width=width)
        page.wait_for_selector("#work-queues")
        overage = page.locator("tr.queue-overage")
        assert overage.locator("td.count").inner_text() == "1"
        assert "€26.00 in all" in overage.inner_text()  # 400 SMS over at €0.065
        assert page.locator("tr.queue-near_limit td.count").inner_text() == "1"
        assert page.locator("tr.queue-limit_requests td.count").inner_text() == "1"
        assert _fits(page)
        page.screenshot(path=str(SHOTS / f"console-start-{width}.png"), full_page=True)

        overage.locator("a").click()
        page.wait_for_url("**/overagecharge/?ready=yes")
        rows = page.locator("#result_list > tbody > tr")
        assert rows.count() == 1 and "BrightCart Ltd" in rows.first.inner_text()

        page.goto(f"{live_server.url}/admin/tenants/tenant/{bright}/change/")
        page.wait_for_selector("#tenant-summary")
        sms = page.locator("#tenant-summary tr.channel-sms")
        assert [c.inner_text() for c in sms.locator("td.num").all()] == [
            "1,500", "2,000", "0", "500",
        ]  # fmt: skip
        assert sms.locator("svg.usage-history g").count() == 12
        assert "awaiting a decision" in page.locator("#summary-charges").inner_text()
        assert "1,800 included" in page.locator("#summary-scheduled").inner_text()
        assert "500 SMS for €29.00" in page.locator("#summary-offers").inner_text()
        assert "2,000 → 3,000" in page.locator("#summary-requests").inner_text()
        assert _fits(page)
        page.screenshot(path=str(SHOTS / f"console-tenant-{width}.png"), full_page=True)
        page.locator("#tenant-summary").screenshot(
            path=str(SHOTS / f"console-tenant-summary-{width}.png")
        )
        page.close()


def _fits(page) -> bool:
    """No sideways scrolling: the page is no wider than the window."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))
