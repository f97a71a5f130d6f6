"""What a staff member sees: the console in a real headless Chromium (Debian's, not a
download), driven by Playwright. Screenshots land in var/screenshots/ (SCREENSHOTS_DIR to
choose; `SCREENSHOTS_DIR=docs/screenshots` refreshes the ones the docs show), so that a test
run leaves the tree clean."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import sync_playwright

from metering.models import Channel
from metering.services.ingest import usage_record_batch
from policies.models import LimitRecommendation, LimitRule, Restriction
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / os.environ.get("SCREENSHOTS_DIR", "var/screenshots")
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def browser(monkeypatch):
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: scripts/test.sh installs it"
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls
    # are synchronous all the same (the documented way for Django with Playwright).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def signed_in_page(browser, live_server, username: str, *, width: int = 1280, height: int = 900):
    """A new page of ``browser``, signed in to the console as ``username`` (password
    ``staff-password-1``)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", "staff-password-1")
    page.click("input[type=submit]")
    return page


def test_staff_filters_to_tenants_near_their_limit_and_changes_an_sms_limit(live_server, browser):
    near = TenantFactory.create(slug="nordlicht", name="Nordlicht Möbel GmbH", time_zone="UTC")
    calm = TenantFactory.create(slug="praxis", name="Praxis Dr. Weber", time_zone="UTC")
    for tenant, used in ((near, 1850), (calm, 300)):
        set_rule(tenant, "sms", included_units=2000)
        usage_record_batch(
            tenant=tenant, payload={"events": [event("u", channel="sms", quantity=used)]}
        )
    User.objects.create_superuser("sam", "sam@creditguard.example", "staff-password-1")
    SHOTS.mkdir(parents=True, exist_ok=True)

    page = signed_in_page(browser, live_server, "sam", width=1400)
    page.goto(f"{live_server.url}/admin/tenants/tenant/")
    page.screenshot(path=str(SHOTS / "1-tenants.png"), full_page=True)

    page.click("text=Near a limit (≥ 80 %)")
    page.wait_for_url("**usage=near**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "Nordlicht" in rows.first.inner_text() and "SMS 92 %" in rows.first.inner_text()
    page.screenshot(path=str(SHOTS / "2-near-limit.png"), full_page=True)

    rows.first.locator("th a").click()
    page.click("text=Change a limit")
    page.select_option("#id_channel", label="SMS")
    page.fill("#id_included_units", "2500")
    page.fill("#id_hard_limit", "250")
    page.fill("#id_reason", "Christmas campaign agreed with the customer")
    page.screenshot(path=str(SHOTS / "3-change-limit.png"), full_page=True)
    page.click("input[type=submit]")

    # A new ceiling is worse terms: a page names them and the tenant's message first.
    consequences = page.locator(".console-consequences").inner_text()
    assert "Ceiling beyond the credits: none → 250" in consequences
    assert "SMS" in page.locator(".console-message").inner_text()
    page.screenshot(path=str(SHOTS / "3b-confirm-limit.png"), full_page=True)
    page.click("input[name=confirmed]")

    # Version 1 came from the cohort defaults, 2 from the test's set-up; the raise applies
    # at once (3), the new ceiling after the notice (4), and the tenant is told.
    message = page.locator(".messagelist").inner_text().lower()
    assert "v3 from" in message and "v4 from" in message and "was told" in message
    history = page.locator("#limit_rules-group").inner_text()
    assert "Christmas campaign agreed with the customer" in history and "2500" in history
    page.screenshot(path=str(SHOTS / "4-history.png"), full_page=True)
    rule = LimitRule.objects.filter(tenant=near, channel__code="sms").order_by("-version").first()
    assert (rule.version, rule.included_units, rule.hard_limit) == (4, 2500, 250)


def test_staff_restrict_a_tenant_after_reading_what_it_will_be_told(live_server, browser):
    """The restrict form starts at a throttle of a channel to choose; the confirmation page
    shows the customer's message; the pages fit at 1280 and 1920 px (screenshots of both)."""
    tenant = TenantFactory.create(
        slug="brightcart", name="BrightCart", time_zone="Europe/Berlin", language="de",
        contact_email="ops@brightcart.example",
    )  # fmt: skip
    sms = Channel.objects.get(code="sms")
    for number in range(3):
        LimitRecommendation.objects.create(
            tenant=tenant, channel=sms, computed_at=timezone.now(), current_included=2000,
            suggested_included=2400 + 100 * number, suggested_hard_limit=480,
            own_trend=0.1290804643759722, own_average=1900, cohort="retail × medium",
            cohort_size=12, explanation="With fewer than 5 retail tenants to compare with, all "
            "11 other tenants are compared: they used a median of 1,600 SMS in their last full "
            "period. This tenant's last three months averaged 1,900 SMS, rising 13 % a month.",
        )  # fmt: skip
    User.objects.create_superuser("sam", "sam@creditguard.example", "staff-password-1")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 1920):
        page = signed_in_page(browser, live_server, "sam", width=width)
        page.goto(f"{live_server.url}/admin/policies/limitrecommendation/")
        assert "+12.9 %" in page.locator("#result_list").inner_text()
        why = page.locator("#result_list td.field-reasons").first.bounding_box()
        assert why is not None and why["width"] >= 180  # a sentence, not a word per line
        table = page.locator("#result_list").bounding_box()
        results = page.locator("#changelist .results").bounding_box()
        assert table is not None and results is not None
        assert table["width"] <= results["width"] + 1  # no column cut off
        page.screenshot(path=str(SHOTS / f"console-recommendations-{width}.png"), full_page=True)

        page.goto(f"{live_server.url}/admin/tenants/tenant/{tenant.pk}/restrict/")
        assert page.locator("#id_kind_0").is_checked()  # a throttle
        assert page.input_value("#id_hours") == "24"
        assert page.input_value("#id_channel") == ""  # to choose
        page.screenshot(path=str(SHOTS / f"console-restrict-form-{width}.png"), full_page=True)
        page.select_option("#id_channel", label="SMS")
        page.fill("#id_limit_units", "100")
        page.fill("#id_reason", f"Ticket 4711 ({width})")
        page.fill("#id_customer_reason", "Ungewöhnlich viele SMS in kurzer Zeit.")
        page.click("input[type=submit]")
        message = page.locator(".console-message").inner_text()
        assert "Ungewöhnlich viele SMS in kurzer Zeit." in message  # in the tenant's German
        page.screenshot(path=str(SHOTS / f"console-restrict-confirm-{width}.png"), full_page=True)
        assert not Restriction.objects.filter(reason=f"Ticket 4711 ({width})").exists()
        page.click("input[name=confirmed]")
        done = page.locator(".messagelist").inner_text()
        assert "Throttle to 100 units per hour on SMS for BrightCart until" in done
        assert "BrightCart's contact was told by e-mail and in-app" in done
        page.close()
    assert Restriction.objects.filter(tenant=tenant).count() == 2
