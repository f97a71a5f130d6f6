"""What a customer sees: the portal in a real headless Chromium (Debian's), driven by
Playwright — log in, read the overview, accept an offer, acknowledge the policy, read the
notifications, switch the language, the phone layout, log out. Screenshots land in
var/screenshots/portal-*.png (SCREENSHOTS_DIR=docs/screenshots refreshes the docs' ones)."""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from metering.models import Channel
from metering.services.ingest import usage_record_batch
from policies.models import PolicyAcknowledgement, PolicyVersion, TopUp, TopUpPack
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.overage import overage_charge_refresh
from policies.services.policy import policy_version_publish
from policies.services.topups import topup_offer_create
from tenants.models import Membership
from tests.conftest import event
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.policies.helpers import set_rule

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / os.environ.get("SCREENSHOTS_DIR", "var/screenshots")
PASSWORD = "portal-password-1"  # noqa: S105
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def browser(monkeypatch):
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: scripts/test.sh installs it"
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield browser
        browser.close()


def customer_world(settings):
    settings.FEE_NOTICE_DAYS = 0
    tenant = TenantFactory.create(
        slug="nordlicht", name="Nordlicht Möbel GmbH", language="en", time_zone="Europe/Berlin"
    )
    other = TenantFactory.create(slug="praxis", name="Praxis Dr. Weber", language="de")
    user = UserFactory.create(username="olga", first_name="Olga", last_name="Berg")
    user.set_password(PASSWORD)
    user.save()
    MembershipFactory.create(tenant=tenant, user=user, role=Membership.Role.OWNER)
    MembershipFactory.create(tenant=other, user=user, role=Membership.Role.VIEWER)
    sms = Channel.objects.get(code="sms")
    set_rule(tenant, "sms", included_units=2000, hard_limit=500, action="charge_overage")
    set_rule(tenant, "call", included_units=500, action="restrict", restrict_units=20,
             restrict_window="hour")  # fmt: skip
    schedule = fee_schedule_create(
        channel=Channel.objects.get(code="call"), name="Call overage",
        tiers=[(1000, "0.13"), (None, "0.10")], effective_from=timezone.now() - timedelta(days=60),
    )  # fmt: skip
    fee_schedule_notify(schedule=schedule, now=timezone.now() - timedelta(days=60))
    now = timezone.now()
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    usage_record_batch(
        tenant=tenant,
        payload={"events": [
            event("sms-1", channel="sms", quantity=1815, occurred_at=(start + timedelta(hours=2)).isoformat()),
            event("email-1", channel="email", quantity=3200, occurred_at=(start + timedelta(hours=3)).isoformat()),
            event("call-1", channel="call", quantity=560, occurred_at=(start + timedelta(hours=4)).isoformat()),
        ]},
    )  # fmt: skip
    from metering.models import BillingPeriod

    period = BillingPeriod.objects.get(tenant=tenant, status="open")
    overage_charge_refresh(tenant=tenant, channel=Channel.objects.get(code="call"), period=period)
    pack = TopUpPack.objects.create(channel=sms, units=500, price=Decimal("29.00"))
    offer = topup_offer_create(tenant=tenant, pack=pack)
    version = PolicyVersion.objects.create(
        label="1.1", text_de="1. Allgemeines\nNeu.", text_en="1. General\nClearer wording.",
        summary_de="Klarere Worte.", summary_en="Clearer wording, the same terms.",
        effective_from=now + timedelta(days=35), material=True,
    )  # fmt: skip
    policy_version_publish(version=version, actor=None)
    return tenant, offer, version


def test_a_customer_reads_the_overview_accepts_an_offer_and_acknowledges_the_policy(
    live_server, browser, settings
):
    tenant, offer, version = customer_world(settings)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1360, "height": 900})

    page.goto(f"{live_server.url}/dashboard/")
    expect(page).to_have_url(f"{live_server.url}/login/?next=/dashboard/")
    page.screenshot(path=str(SHOTS / "portal-1-login.png"), full_page=True)
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/dashboard/")
    sms = page.locator("article#channel-sms, article[aria-labelledby=channel-sms]")
    expect(sms).to_contain_text("1,815 of 2,000 used")
    expect(sms).to_contain_text("Near the limit")
    expect(sms).to_contain_text("Hard ceiling")
    page.screenshot(path=str(SHOTS / "portal-2-overview.png"), full_page=True)

    sms.get_by_role("button", name="Accept the offer").click()
    expect(page.locator(".flash")).to_contain_text("Booked: 500 more units for €29.00.")
    expect(sms).to_contain_text("1,815 of 2,500 used")
    assert TopUp.objects.get(offer=offer).units == 500

    page.get_by_role("link", name="Read and acknowledge it").click()
    expect(page).to_have_url(f"{live_server.url}/policy/")
    page.screenshot(path=str(SHOTS / "portal-3-policy.png"), full_page=True)
    page.get_by_role("button", name="Acknowledge version 1.1").click()
    expect(page.locator(".flash")).to_contain_text("You acknowledged fair use policy 1.1.")
    assert PolicyAcknowledgement.objects.filter(tenant=tenant, version=version).exists()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Notifications").click()
    expect(page.locator("h1")).to_have_text("Notifications")
    page.screenshot(path=str(SHOTS / "portal-4-notifications.png"), full_page=True)

    page.select_option("#language-switch", "de")
    expect(page.locator("h1")).to_have_text("Benachrichtigungen")
    page.get_by_role("navigation", name="Hauptnavigation").get_by_role(
        "link", name="Übersicht"
    ).click()
    expect(page.locator("article[aria-labelledby=channel-sms]")).to_contain_text(
        "1.815 von 2.500 genutzt"
    )
    page.screenshot(path=str(SHOTS / "portal-5-overview-de.png"), full_page=True)

    page.select_option("#tenant-switch", "praxis")
    expect(page.locator("#tenant-switch")).to_have_value("praxis")
    expect(page.get_by_role("button", name="Angebot annehmen")).to_have_count(0)

    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{live_server.url}/dashboard/")
    expect(phone.locator("#portal-nav")).to_be_hidden()
    phone.get_by_role("button", name="Menü").click()
    expect(phone.locator("#portal-nav")).to_be_visible()
    phone.screenshot(path=str(SHOTS / "portal-6-phone.png"), full_page=True)

    page.locator(".user-menu summary").click()
    page.get_by_role("button", name="Abmelden").click()
    expect(page).to_have_url(f"{live_server.url}/login/")
    page.goto(f"{live_server.url}/dashboard/")
    expect(page).to_have_url(f"{live_server.url}/login/?next=/dashboard/")
