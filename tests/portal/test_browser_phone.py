"""Every portal page on a phone (390 px) in a real headless Chromium: none scrolls
sideways (issue 11: /notifications/ was 491 px wide, /developers/ 762, /team/ 472 — a
table's visually hidden labels escaped its scrolling box)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from metering.models import Channel
from notifications.models import Delivery
from notifications.services.alert_recipients import alert_recipient_add
from notifications.services.webhook_deliveries import webhook_endpoint_test
from notifications.services.webhooks import webhook_endpoint_create
from policies.services.alerts import alert_threshold_add
from portal.nav import NAV
from tenants.models import Membership
from tenants.services import api_key_create
from tests.factories import MembershipFactory, UserFactory
from tests.portal.test_browser import PASSWORD, browser, customer_world  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PHONE = {"width": 390, "height": 844}


def test_no_page_scrolls_sideways_on_a_phone(live_server, browser, settings):  # noqa: F811
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    tenant, _offer, _version = customer_world(settings)
    # Each page's tables with rows: keys, an endpoint and a failed delivery, alerts and
    # recipients, members.
    api_key_create(tenant=tenant, name="Webshop production", scopes=["usage:write"])
    endpoint = webhook_endpoint_create(
        tenant=tenant, url="https://127.0.0.1:9/hooks/creditguard/events/production"
    )
    webhook_endpoint_test(tenant=tenant, public_id=endpoint.public_id)
    Delivery.objects.filter(endpoint=endpoint).update(
        status=Delivery.Status.FAILED,
        attempts=6,
        last_error="SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
        "verify failed: unable to get local issuer certificate (_ssl.c:1006)",
    )
    alert_threshold_add(
        tenant=tenant, channel=Channel.objects.get(code="sms"), percent=65, actor=None
    )
    alert_recipient_add(tenant=tenant, email="on-call.operations@nordlicht.example", actor=None)
    colleague = UserFactory.create(
        username="kai.lindqvist-montgomery", email="kai@nordlicht.example"
    )
    MembershipFactory.create(tenant=tenant, user=colleague, role=Membership.Role.ADMIN)

    page = browser.new_page(viewport=PHONE)
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/dashboard/")
    wide = {}
    for item in NAV:
        for language in ("en", "de"):
            page.context.add_cookies(
                [{"name": "django_language", "value": language, "url": live_server.url}]
            )
            response = page.goto(f"{live_server.url}{reverse(item.url_name)}")
            assert response is not None and response.status == 200, item.url_name
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > PHONE["width"]:
                wide[f"{reverse(item.url_name)} ({language})"] = width
    assert not wide, f"pages that scroll sideways at 390 px: {wide}"
