"""Credits and Team in a real headless Chromium (Debian's, Playwright): an owner buys a
pack and sets an automatic top-up; an owner invites a person, who accepts the link in a
second browser and joins. Screenshots land in var/screenshots/portal-credits*.png and
portal-team*.png (SCREENSHOTS_DIR=docs/screenshots refreshes the docs' ones)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from metering.models import Channel
from metering.services.ingest import usage_record_batch
from policies.models import AutoTopUp, TopUp, TopUpPack
from tenants.models import Membership
from tests.conftest import event
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.policies.helpers import set_rule
from tests.portal.test_browser import PASSWORD, SHOTS, browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def owner_world():
    tenant = TenantFactory.create(
        slug="nordlicht", name="Nordlicht Möbel GmbH", language="en", time_zone="Europe/Berlin"
    )
    user = UserFactory.create(username="olga", first_name="Olga", last_name="Berg")
    user.set_password(PASSWORD)
    user.save()
    MembershipFactory.create(tenant=tenant, user=user, role=Membership.Role.OWNER)
    set_rule(tenant, "sms", included_units=2000)
    usage_record_batch(
        tenant=tenant, payload={"events": [event("s1", channel="sms", quantity=1815)]}
    )
    sms = Channel.objects.get(code="sms")
    TopUpPack.objects.create(channel=sms, units=500, price=Decimal("29.00"))
    TopUpPack.objects.create(channel=sms, units=2000, price=Decimal("99.00"))
    return tenant


def log_in(page, base: str, username: str = "olga") -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/dashboard/")


def test_an_owner_buys_a_pack_and_sets_an_automatic_top_up(live_server, browser):  # noqa: F811
    tenant = owner_world()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    log_in(page, live_server.url)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Credits").click()
    expect(page.locator("h1")).to_have_text("Credits and purchases")
    packs = page.locator("article[aria-labelledby=packs-sms]")
    packs.get_by_text("Buy", exact=True).first.click()
    page.screenshot(path=str(SHOTS / "portal-credits-1-confirm.png"), full_page=True)
    packs.get_by_role("button", name="Confirm: buy 500 units for €29.00").click()
    expect(page.locator(".flash")).to_contain_text("Booked: 500 more units for €29.00.")
    expect(page.locator("section[aria-labelledby=purchased]")).to_contain_text("500")
    expect(page.locator("section[aria-labelledby=topups]")).to_contain_text("Bought")
    assert TopUp.objects.filter(tenant=tenant).count() == 1

    auto = page.locator("#auto-sms")
    auto.get_by_label("Buy automatically").check()
    auto.get_by_label("When the remaining credits fall to").fill("100")
    auto.get_by_label("Buy", exact=True).select_option(label="2,000 units for €99.00")
    auto.get_by_label("At most, per period").fill("2")
    auto.get_by_role("button", name="Save settings").click()
    expect(page.locator(".flash")).to_contain_text("Automatic top-up saved.")
    expect(page.locator("#auto-sms")).to_contain_text(
        "When 100 or fewer remain, buys 2,000 units for €99.00 (per period at most: 2)."
    )
    setting = AutoTopUp.objects.get(tenant=tenant)
    assert (setting.enabled, setting.threshold_units, setting.max_per_period) == (True, 100, 2)
    page.screenshot(path=str(SHOTS / "portal-credits-2-page.png"), full_page=True)
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{live_server.url}/credits/")
    phone.screenshot(path=str(SHOTS / "portal-credits-3-phone.png"), full_page=True)


def test_an_owner_invites_a_person_who_joins_from_a_second_browser(live_server, browser):  # noqa: F811
    tenant = owner_world()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    log_in(page, live_server.url)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Team").click()
    expect(page.locator("h1")).to_have_text("Team")
    page.get_by_label("E-mail address").fill("nina@example.com")
    page.locator("#invite-role").select_option("admin")
    page.get_by_role("button", name="Send invitation").click()
    flash = page.locator(".flash")
    expect(flash).to_contain_text("Invitation sent to nina@example.com")
    link = re.search(r"https?://\S+/invitations/[\w-]+/", flash.inner_text())[0]
    path = link[link.index("/invitations/") :]
    expect(page.locator("section[aria-labelledby=invitations]")).to_contain_text("nina@example.com")
    page.screenshot(path=str(SHOTS / "portal-team-1-invited.png"), full_page=True)

    guest_context = browser.new_context(viewport={"width": 390, "height": 844})
    guest = guest_context.new_page()
    guest.goto(f"{live_server.url}{path}")
    expect(guest.locator("h1")).to_have_text("Join Nordlicht Möbel GmbH")
    guest.fill("#id_username", "nina")
    guest.fill("#id_password", "a-long-pass-9")
    guest.fill("#id_password_again", "a-long-pass-9")
    guest.screenshot(path=str(SHOTS / "portal-team-2-accept.png"), full_page=True)
    guest.get_by_role("button", name="Create login and join").click()
    expect(guest).to_have_url(f"{live_server.url}/dashboard/")
    expect(guest.locator(".flash")).to_contain_text("Welcome to Nordlicht Möbel GmbH.")
    assert Membership.objects.get(user__username="nina", tenant=tenant).role == "admin"
    guest.goto(f"{live_server.url}{path}")
    expect(guest.locator("h1")).to_have_text("This invitation is not valid")
    guest_context.close()

    page.reload()
    expect(page.locator("section[aria-labelledby=members]")).to_contain_text("nina")
    page.screenshot(path=str(SHOTS / "portal-team-3-members.png"), full_page=True)
