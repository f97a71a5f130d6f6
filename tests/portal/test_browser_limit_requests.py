"""A limit request end to end in a real headless Chromium: the customer asks for more
credits in the portal, staff review it in the console beside the usage and the
recommendation and approve it, the customer sees it approved and is notified. Screenshots
land in var/screenshots/portal-limit-*.png (SCREENSHOTS_DIR=docs/screenshots refreshes the
docs' ones)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import Group, User
from django.utils import timezone
from playwright.sync_api import expect

from metering.services.ingest import usage_record_batch
from policies.models import LimitRequest
from policies.roles import ADMINISTRATORS
from policies.selectors import effective_rule
from policies.services.recommend import recommendations_compute
from tenants.models import Membership
from tests.conftest import event
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.policies.helpers import set_rule
from tests.portal.test_browser import CHROMIUM, PASSWORD, SHOTS, browser, pytestmark

__all__ = ["CHROMIUM", "browser", "pytestmark"]  # the browser fixture and the DB marker


def ask_for_sms_credits(page, included_units: str) -> None:
    """Fill the limit request form for SMS (a campaign's reason) and send it."""
    page.select_option("#id_channel", "sms")
    page.fill("#id_included_units", included_units)
    page.fill("#id_expected_volume", "4500")
    page.fill("#id_reason", "Black Friday campaign: three mailings to 1,500 customers.")
    page.get_by_role("button", name="Send the request").click()


def test_a_customer_asks_for_more_credits_and_staff_approve_them(live_server, browser):
    tenant = TenantFactory.create(
        slug="nordlicht", name="Nordlicht Möbel GmbH", language="en", time_zone="Europe/Berlin"
    )
    customer = UserFactory.create(username="olga", first_name="Olga", last_name="Berg")
    customer.set_password(PASSWORD)
    customer.save()
    MembershipFactory.create(tenant=tenant, user=customer, role=Membership.Role.OWNER)
    set_rule(tenant, "sms", included_units=2000)
    start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event("sms-1", channel="sms", quantity=1815,
                                  occurred_at=(start + timedelta(hours=2)).isoformat())]},
    )  # fmt: skip
    recommendations_compute(tenants=[tenant])
    staff = User.objects.create_user("stella", "stella@creditguard.example", PASSWORD,
                                     is_staff=True)  # fmt: skip
    staff.groups.add(Group.objects.get(name=ADMINISTRATORS))
    SHOTS.mkdir(parents=True, exist_ok=True)

    # The customer asks.
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Limit requests").click()
    expect(page).to_have_url(f"{live_server.url}/limits/requests/")
    expect(page.locator("#id_channel")).to_contain_text("SMS (now 2,000 per period)")
    ask_for_sms_credits(page, "-3")
    expect(page.locator(".field-error")).to_contain_text("greater than or equal to 0")
    ask_for_sms_credits(page, "5000")
    expect(page.locator(".flash")).to_contain_text("Your request is sent.")
    mine = page.locator(".list-item").first
    expect(mine).to_contain_text("SMS: 5,000 units per period")
    expect(mine).to_contain_text("Open")
    page.screenshot(path=str(SHOTS / "portal-limit-1-request.png"), full_page=True)
    request = LimitRequest.objects.get(tenant=tenant)
    assert (request.status, request.requested_by) == ("open", customer)

    # Staff review it beside the usage and the recommendation, and approve another figure.
    console = browser.new_page(viewport={"width": 1360, "height": 1000})
    console.goto(f"{live_server.url}/admin/policies/limitrequest/")
    console.fill("#id_username", "stella")
    console.fill("#id_password", PASSWORD)
    console.locator("input[type=submit]").click()
    console.get_by_role("link", name="Review and decide").click()
    expect(console.locator("#content")).to_contain_text("Black Friday campaign")
    expect(console.locator("#content")).to_contain_text("Recommendation and peer cohort")
    expect(console.locator("#content")).to_contain_text("1,815")
    console.screenshot(path=str(SHOTS / "portal-limit-2-console-review.png"), full_page=True)
    console.fill("#approve_included_units", "4500")
    console.fill("#approve_reason", "Seasonal peak; the recommendation agrees")
    console.fill("#approve_customer_reason", "Good luck with the campaign.")
    console.locator("input[name=approve]").click()
    expect(console.locator(".messagelist")).to_contain_text("approved: 4,500 SMS credits")
    request.refresh_from_db()
    assert (request.status, request.approved_included_units) == ("approved", 4500)
    assert effective_rule(
        tenant=tenant, channel=request.channel, at=timezone.now()
    ).included_units == (4500)

    # The customer sees it approved and is notified.
    page.reload()
    expect(mine).to_contain_text("Approved: 4,500 units per period, in force now.")
    expect(mine).to_contain_text("Our note: Good luck with the campaign.")
    page.screenshot(path=str(SHOTS / "portal-limit-3-approved.png"), full_page=True)
    page.get_by_role("link", name="Notifications").click()
    expect(page.locator("main")).to_contain_text("SMS: your limit request is approved")

    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{live_server.url}/limits/requests/")
    expect(phone.locator("h1")).to_contain_text("Limit requests")
    phone.screenshot(path=str(SHOTS / "portal-limit-4-phone.png"), full_page=True)
