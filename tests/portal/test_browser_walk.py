"""One walk through the whole portal in a real headless Chromium (Debian's, Playwright), as
issue 11 asks: an owner logs in, reads the overview, opens the usage chart (by day and by
hour, its table and CSV), accepts an offer, buys a pack, asks for a different limit,
creates and revokes an API key, acknowledges the policy, reads the notifications and adds
an alert and a recipient, reads the team, switches to German and logs out; another
tenant's ids answer 404; then a viewer sees no action buttons and is refused when posting
an action anyway.

It takes one screenshot per portal page at desktop width, the overview and the usage on a
phone (390 px) and the overview in German: portal-walk-NN-<page>.png in var/screenshots, or in
docs/screenshots with SCREENSHOTS_DIR=docs/screenshots (the README's pictures)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from django.utils import timezone
from playwright.sync_api import Page, expect

from notifications.models import AlertRecipient, WebhookEndpoint
from policies.models import (
    AlertThreshold,
    LimitRequest,
    PolicyAcknowledgement,
    TopUp,
    TopUpOffer,
    TopUpPack,
)
from policies.services.topups import topup_offer_create
from tenants.invitations import invitation_create
from tenants.models import ApiKey, Invitation, Membership
from tenants.services import api_key_create
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.portal.test_browser import PASSWORD, SHOTS, browser, customer_world, pytestmark
from tests.portal.test_browser_credits_team import log_in
from tests.portal.test_browser_limit_requests import ask_for_sms_credits

__all__ = ["browser", "pytestmark"]  # the browser fixture and the DB marker

DESKTOP = {"width": 1360, "height": 900}
PHONE = {"width": 390, "height": 844}


class Shots:
    """Screenshots numbered in the order of the walk: portal-walk-NN-<page>.png."""

    def __init__(self) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.taken: list[str] = []

    def __call__(self, page: Page, name: str) -> None:
        file = f"portal-walk-{len(self.taken) + 1:02d}-{name}.png"
        # From the top: after a link to an anchor the sticky menu would be drawn mid-page.
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SHOTS / file), full_page=True)
        self.taken.append(file)


def stranger_world():
    """Another tenant with things of every kind the portal acts on by id."""
    stranger = TenantFactory.create(slug="fremd", name="Fremd KG", language="de")
    person = UserFactory.create(username="frieda")
    membership = MembershipFactory.create(tenant=stranger, user=person, role="admin")
    pack = TopUpPack.objects.get(channel__code="sms", units=500)  # customer_world's
    return {
        "offer": topup_offer_create(tenant=stranger, pack=pack),
        "key": api_key_create(tenant=stranger, name="Theirs", scopes=["usage:read"]).api_key,
        "endpoint": WebhookEndpoint.objects.create(
            public_id=uuid.uuid4(),
            tenant=stranger,
            url="https://hooks.example.com/fremd",
            secret_encrypted="-",
            created_at=timezone.now(),
        ),  # fmt: skip
        "membership": membership,
        "invitation": invitation_create(
            tenant=stranger, email="x@fremd.example", role="viewer", actor=None
        ).invitation,
    }


def post(page: Page, path: str, base: str, **form: str) -> int:
    """POST a form as the page's signed-in person would (with the CSRF token), not
    following the answer: its status."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"{base}{path}", form={"csrfmiddlewaretoken": token, **form}, max_redirects=0
    )
    return response.status


def nav(page: Page, name: str, *, label: str = "Main") -> None:
    """Follow the menu's entry ``name`` (its unread badge aside)."""
    menu = page.get_by_role("navigation", name=label)
    menu.get_by_role("link", name=re.compile(rf"^{re.escape(name)}\b")).click()


def test_a_customer_walks_the_portal_and_a_viewer_cannot_act(live_server, browser, settings):
    tenant, offer, version = customer_world(settings)
    viewer = UserFactory.create(username="vera", first_name="Vera", last_name="Licht")
    viewer.set_password(PASSWORD)
    viewer.save()
    MembershipFactory.create(tenant=tenant, user=viewer, role=Membership.Role.VIEWER)
    theirs = stranger_world()
    base, shot = live_server.url, Shots()
    page = browser.new_page(viewport=DESKTOP)
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations

    # Before logging in: the login and the password reset.
    page.goto(f"{base}/password-reset/")
    expect(page.locator("main")).to_contain_text("password")
    shot(page, "password-reset")
    page.goto(f"{base}/login/")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    shot(page, "login")
    log_in(page, base)

    # The overview: the figures, the state, what happens past the limit; accept the offer.
    expect(page.locator("h1")).to_have_text("Overview")
    sms = page.locator("article[aria-labelledby=channel-sms]")
    expect(sms).to_contain_text("1,815 of 2,000 used")
    expect(sms).to_contain_text("Near the limit")
    expect(sms).to_contain_text("Past the limit:")
    expect(page.locator("article[aria-labelledby=channel-call]")).to_contain_text("Overage so far")
    expect(page.locator("main")).to_contain_text("Fair use policy 1.1 takes effect on")
    shot(page, "overview")

    # The usage over time: SMS's chart with its figures, by day and by hour, and the CSV.
    sms.get_by_role("link", name="Usage over time").click()
    expect(page.locator("h1")).to_have_text("Usage")
    chart = page.locator("#usage-sms")
    expect(chart).to_contain_text("1,815 (91%)")
    expect(chart.locator("svg.usage-chart")).to_be_visible()
    expect(chart.locator("svg.usage-chart")).to_contain_text("Included 2,000")
    chart.get_by_text("Show the figures by day").click()
    expect(chart.locator("table")).to_contain_text("1,815")
    shot(page, "usage")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("channel,") and any(
        line.startswith("sms,") and ",1815,1815," in line for line in lines
    ), lines[:3]
    page.get_by_role("navigation", name="Granularity").get_by_role("link", name="By hour").click()
    expect(chart.locator("svg.usage-chart title")).to_contain_text("by hour")
    nav(page, "Overview")
    sms.get_by_role("button", name="Accept the offer").click()
    expect(page.locator(".flash")).to_contain_text("Booked: 500 more units for €29.00.")
    expect(sms).to_contain_text("1,815 of 2,500 used")
    assert TopUp.objects.get(offer=offer).units == 500

    # Credits: buy a pack (confirmed), see it among the purchased credits and top-ups.
    nav(page, "Credits")
    expect(page.locator("h1")).to_have_text("Credits and purchases")
    packs = page.locator("article[aria-labelledby=packs-sms]")
    packs.get_by_text("Buy", exact=True).first.click()
    packs.get_by_role("button", name="Confirm: buy 500 units for €29.00").click()
    expect(page.locator(".flash")).to_contain_text("Booked: 500 more units for €29.00.")
    expect(page.locator("section[aria-labelledby=topups]")).to_contain_text("Bought")
    expect(page.locator("section[aria-labelledby=topups]")).to_contain_text("Offer accepted")
    assert TopUp.objects.filter(tenant=tenant).count() == 2
    shot(page, "credits")

    # Limit requests: ask for more SMS credits.
    nav(page, "Limit requests")
    ask_for_sms_credits(page, "5000")
    expect(page.locator(".flash")).to_contain_text("Your request is sent.")
    expect(page.locator(".list-item").first).to_contain_text("SMS: 5,000 units per period")
    assert LimitRequest.objects.get(tenant=tenant).status == "open"
    shot(page, "limit-requests")

    # Developers: create a key (shown once), revoke it.
    nav(page, "Developers")
    page.fill("#id_name", "Shop backend")
    page.get_by_label("Read balances, usage and notifications").check()
    page.get_by_role("button", name="Create key").click()
    raw_key = page.locator("#new-key-value").input_value()
    key = ApiKey.objects.get(tenant=tenant, name="Shop backend")
    assert raw_key.startswith(f"cg_{key.prefix}_")
    page.goto(f"{base}/developers/")
    row = page.locator(f"#key-{key.prefix}")
    expect(row).to_contain_text("Active")
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(".flash")).to_contain_text("Key Shop backend is revoked.")
    expect(row).to_contain_text("Revoked")
    shot(page, "developers")

    # The policy: acknowledge the announced version.
    nav(page, "Fair use policy")
    page.get_by_role("button", name="Acknowledge version 1.1").click()
    expect(page.locator(".flash")).to_contain_text("You acknowledged fair use policy 1.1.")
    expect(page.locator("section[aria-labelledby='policy-1.1']")).to_contain_text("Acknowledged")
    assert PolicyAcknowledgement.objects.filter(tenant=tenant, version=version).exists()
    shot(page, "policy")

    # Notifications: what the walk did is told here too.
    nav(page, "Notifications")
    expect(page.locator("h1")).to_have_text("Notifications")
    expect(page.locator("main")).to_contain_text("SMS: top-up booked")
    # Its alerts: warn at 75 % of the SMS credits too, and the on-call address as well.
    alerts = page.locator("#alerts")
    alerts.get_by_label("Channel").select_option("sms")
    alerts.get_by_label("Warn at (percent of the credits)").fill("75")
    alerts.get_by_role("button", name="Add alert").click()
    expect(page.locator(".flash")).to_contain_text("You will be warned at 75% of your SMS credits.")
    alerts.get_by_label("E-mail address").fill("on-call@nordlicht.example")
    alerts.get_by_role("button", name="Add recipient").click()
    expect(page.locator(".flash")).to_contain_text("on-call@nordlicht.example will receive")
    expect(alerts).to_contain_text("75%")
    shot(page, "notifications")

    # Team: the owner and the viewer, and the invitation form (owners only).
    nav(page, "Team")
    members = page.locator("section[aria-labelledby=members]")
    expect(members).to_contain_text("olga")
    expect(members).to_contain_text("vera")
    expect(page.get_by_role("button", name="Send invitation")).to_be_visible()
    shot(page, "team")

    # Another tenant's things, by id, answer 404 and stay as they were.
    for path in (
        f"/dashboard/offers/{theirs['offer'].public_id}/accept/",
        f"/developers/keys/{theirs['key'].prefix}/revoke/",
        f"/developers/webhooks/{theirs['endpoint'].public_id}/rotate/",
        f"/developers/webhooks/{theirs['endpoint'].public_id}/delete/",
        f"/team/members/{theirs['membership'].pk}/remove/",
        f"/team/invitations/{theirs['invitation'].pk}/withdraw/",
    ):
        assert post(page, path, base) == 404, path
    assert post(page, f"/team/members/{theirs['membership'].pk}/role/", base, role="owner") == 404
    assert TopUpOffer.objects.get(pk=theirs["offer"].pk).status == "open"
    assert ApiKey.objects.get(pk=theirs["key"].pk).revoked_at is None
    assert Membership.objects.get(pk=theirs["membership"].pk).role == "admin"
    assert Invitation.objects.get(pk=theirs["invitation"].pk).revoked_at is None

    # On a phone: the menu folds away.
    phone = browser.new_page(viewport=PHONE)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{base}/dashboard/")
    expect(phone.locator("#portal-nav")).to_be_hidden()
    expect(phone.locator("article[aria-labelledby=channel-sms]")).to_contain_text("1,815 of")
    shot(phone, "overview-phone")
    phone.goto(f"{base}/usage/")
    expect(phone.locator("#usage-sms svg.usage-chart")).to_be_visible()
    shot(phone, "usage-phone")

    # In German: the menu, the headings and the figures as German writes them.
    page.select_option("#language-switch", "de")
    expect(page.locator("h1")).to_have_text("Team")
    nav(page, "Übersicht", label="Hauptnavigation")
    expect(page.locator("h1")).to_have_text("Übersicht")
    expect(page.locator("article[aria-labelledby=channel-sms]")).to_contain_text(
        "1.815 von 3.000 genutzt"
    )
    expect(page.locator("article[aria-labelledby=channel-sms]")).to_contain_text("Über dem Limit:")
    shot(page, "overview-de")

    # Log out: the portal asks for the login again.
    page.locator(".user-menu summary").click()
    page.get_by_role("button", name="Abmelden").click()
    expect(page).to_have_url(f"{base}/login/")
    page.goto(f"{base}/credits/")
    expect(page).to_have_url(f"{base}/login/?next=/credits/")

    # A viewer: every page readable, no action on any, and an action posted anyway refused.
    sms_pack = TopUpPack.objects.get(channel__code="sms", units=500)
    open_offer = topup_offer_create(tenant=tenant, pack=sms_pack)
    viewer_page = browser.new_page(viewport=DESKTOP)
    log_in(viewer_page, base, "vera")
    main = viewer_page.locator("main")
    for path, says in (
        ("/dashboard/", "An admin or owner of your account can accept it."),
        ("/usage/", "Download CSV"),
        ("/credits/", "An admin or owner of your account can buy credits."),
        ("/limits/requests/", "An admin or owner of your account can ask for a different limit."),
        ("/developers/", "Shop backend"),
        ("/policy/", "Acknowledged by olga"),
        ("/team/", "vera"),
        ("/notifications/", "An admin or owner of your account can change the alerts"),
    ):
        viewer_page.goto(f"{base}{path}")
        expect(main).to_contain_text(says)
        # Marking notifications read is each person's own, a viewer's too; nothing else.
        actions = main.locator("form[method=post]:not([action='/notifications/read/']) button")
        expect(actions).to_have_count(0)
    for path, form in (
        (f"/dashboard/offers/{open_offer.public_id}/accept/", {}),
        (f"/credits/packs/{sms_pack.pk}/buy/", {"purchase_key": str(uuid.uuid4())}),
        ("/credits/auto-topup/sms/", {"enabled": "on", "threshold_units": "10",
                                      "pack": str(sms_pack.pk), "max_per_period": "1"}),
        ("/limits/requests/", {"channel": "call", "included_units": "900",
                               "expected_volume": "900", "reason": "More calls."}),
        ("/developers/keys/", {"name": "Mine", "scopes": "usage:read"}),
        (f"/developers/keys/{key.prefix}/revoke/", {}),
        ("/policy/", {"version": "1.1"}),
        ("/team/invite/", {"email": "new@example.com", "role": "owner"}),
        ("/notifications/alerts/", {"threshold-channel": "sms", "threshold-percent": "60"}),
        ("/notifications/recipients/", {"recipient-email": "me@example.com"}),
    ):  # fmt: skip
        assert post(viewer_page, path, base, **form) == 403, path
    assert TopUpOffer.objects.get(pk=open_offer.pk).status == "open"
    assert TopUp.objects.filter(tenant=tenant).count() == 2
    assert LimitRequest.objects.filter(tenant=tenant).count() == 1
    assert not ApiKey.objects.filter(tenant=tenant, name="Mine").exists()
    assert not Invitation.objects.filter(tenant=tenant).exists()
    assert list(AlertThreshold.objects.filter(tenant=tenant).values_list("percent", flat=True)) == [
        75
    ]
    assert list(AlertRecipient.objects.filter(tenant=tenant).values_list("email", flat=True)) == [
        "on-call@nordlicht.example"
    ]
    assert len(shot.taken) == len(set(shot.taken))
