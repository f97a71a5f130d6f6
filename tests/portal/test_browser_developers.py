"""The Developers page in a real headless Chromium (Debian's), driven by Playwright: an
owner creates an API key (shown once, and it works), revokes it, adds a webhook endpoint
(its secret shown once), sends it a test event that arrives signed, and reads the
delivery; the page on a phone. Screenshots in var/screenshots/portal-developers-*.png."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from notifications.models import Delivery, WebhookEndpoint
from notifications.services.deliver import delivery_attempt
from tenants.models import ApiKey, Membership
from tests.conftest import Api
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.notifications.receiver import Receiver, signature_is_valid
from tests.portal.test_browser import PASSWORD, SHOTS, browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_ALLOW_HTTP = True
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def test_an_owner_creates_and_revokes_a_key_and_tests_a_webhook(
    live_server,
    browser,  # noqa: F811 - the fixture
    receiver,
):
    tenant = TenantFactory.create(slug="nordlicht", name="Nordlicht Möbel GmbH", language="en")
    user = UserFactory.create(username="olga", first_name="Olga", last_name="Berg")
    user.set_password(PASSWORD)
    user.save()
    MembershipFactory.create(tenant=tenant, user=user, role=Membership.Role.OWNER)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations

    page.goto(f"{live_server.url}/developers/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/developers/")
    expect(page.locator("h1")).to_have_text("Developers")

    page.fill("#id_name", "Shop backend")
    page.get_by_label("Read balances, usage and notifications").check()
    page.get_by_role("button", name="Create key").click()
    raw_key = page.locator("#new-key-value").input_value()
    api_key = ApiKey.objects.get(tenant=tenant, name="Shop backend")
    assert re.fullmatch(rf"cg_{api_key.prefix}_\S+", raw_key)
    assert api_key.scopes == ["usage:read", "usage:write"]
    assert Api(raw_key).get("/api/v1/balances").status_code == 200
    page.screenshot(path=str(SHOTS / "portal-developers-1-key.png"), full_page=True)

    page.goto(f"{live_server.url}/developers/")
    expect(page.locator("#new-key-value")).to_have_count(0)
    row = page.locator(f"#key-{api_key.prefix}")
    expect(row).to_contain_text("Active")
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(".flash")).to_contain_text("Key Shop backend is revoked.")
    expect(row).to_contain_text("Revoked")
    assert Api(raw_key).get("/api/v1/balances").status_code == 401

    page.fill("#id_url", receiver.url)
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.locator("#new-secret-value").input_value()
    endpoint = WebhookEndpoint.objects.get(tenant=tenant)
    assert secret.startswith("whsec_") and secret == endpoint.secret
    page.screenshot(path=str(SHOTS / "portal-developers-2-endpoint.png"), full_page=True)

    page.get_by_role("button", name="Send test event").click()
    expect(page.locator(".flash")).to_contain_text("Test event sent.")
    delivery = Delivery.objects.get(endpoint=endpoint)
    assert delivery_attempt(delivery_id=delivery.pk) == "delivered"  # as the worker does
    (received,) = receiver.received
    assert signature_is_valid(secret, received)
    page.reload()
    expect(page.locator(f"#delivery-{delivery.pk}")).to_contain_text("Delivered")
    expect(page.locator(f"#delivery-{delivery.pk}")).to_contain_text("Test event")
    page.screenshot(path=str(SHOTS / "portal-developers-3-delivery.png"), full_page=True)

    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{live_server.url}/developers/")
    expect(phone.locator("h1")).to_have_text("Developers")
    phone.screenshot(path=str(SHOTS / "portal-developers-4-phone.png"), full_page=True)
