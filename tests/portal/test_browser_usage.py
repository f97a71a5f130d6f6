"""The usage page in a real headless Chromium (Debian's, Playwright): from a channel card on
the overview to its chart, by hour with a tooltip, last period from the selector, and the
phone layout. Screenshots land in var/screenshots/portal-usage-*.png
(SCREENSHOTS_DIR=docs/screenshots refreshes the docs' ones)."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from metering.services.ingest import usage_record_batch
from metering.services.periods import period_bounds
from portal.chart import CHAR_EM
from tenants.models import Membership, Tenant
from tests.conftest import event
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.policies.helpers import set_rule
from tests.portal.test_browser import PASSWORD, SHOTS, browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def busy_tenant() -> Tenant:
    """A tenant with a working day's rhythm of SMS, e-mail and calls from the start of last
    period until now."""
    tenant = TenantFactory.create(
        slug="nordlicht", name="Nordlicht Möbel GmbH", language="en", time_zone="Europe/Berlin"
    )
    user = UserFactory.create(username="olga", first_name="Olga", last_name="Berg")
    user.set_password(PASSWORD)
    user.save()
    MembershipFactory.create(tenant=tenant, user=user, role=Membership.Role.VIEWER)
    now = timezone.now()
    start = period_bounds(tenant=tenant, at=now).starts_at
    last = period_bounds(tenant=tenant, at=start - timedelta(days=1)).starts_at
    set_rule(tenant, "sms", included_units=9000, now=last - timedelta(days=1))
    set_rule(tenant, "email", included_units=40000, now=last - timedelta(days=1))
    set_rule(tenant, "call", included_units=1500, now=last - timedelta(days=1))
    hour, events = last, []
    while hour < now - timedelta(hours=1):
        local = hour.astimezone(tenant.tzinfo)
        working = local.weekday() < 5 and 8 <= local.hour < 19
        wave = 1 + math.sin(local.hour / 24 * math.pi) + (local.day % 7) / 10
        events += [
            event(f"{code}-{hour:%Y%m%d%H}", channel=code, quantity=round(base * wave),
                  occurred_at=(hour + timedelta(minutes=17)).isoformat())
            for code, base in (("sms", 14), ("email", 55), ("call", 2))
            if working or code == "email"
        ]  # fmt: skip
        hour += timedelta(hours=1)
        # A batch a day or so, and one at the period's end (within its grace).
        if len(events) > 60 or hour == start or hour >= now - timedelta(hours=1):
            usage_record_batch(tenant=tenant, payload={"events": events}, now=hour)
            events = []
    return tenant


def test_a_customer_opens_the_chart_switches_to_hours_and_reads_it_on_a_phone(
    live_server,
    browser,  # noqa: F811
):
    busy_tenant()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/dashboard/")

    page.locator("article[aria-labelledby=channel-sms]").get_by_role(
        "link", name="Usage over time"
    ).click()
    expect(page).to_have_url(f"{live_server.url}/usage/#usage-sms")
    expect(page.locator("h1")).to_have_text("Usage")
    sms = page.locator("#usage-sms")
    chart = sms.get_by_role("img", name="SMS: usage in")
    expect(chart).to_be_visible()
    expect(chart.locator("path.line:not(.line-over)")).to_have_count(1)
    expect(chart.locator("line.included")).to_have_count(1)
    expect(chart.locator("line.forecast")).to_have_count(1)
    expect(sms.get_by_text("Forecast for the period")).to_be_visible()

    page.get_by_role("link", name="By hour").click()
    expect(page).to_have_url(f"{live_server.url}/usage/?period=0&granularity=hour")
    # The tooltip's script runs on DOMContentLoaded: a pointer moved before it has
    # listened shows nothing (seen on a loaded machine).
    page.wait_for_load_state("load")
    expect(sms.get_by_text("Show the figures by hour")).to_be_visible()
    sms.locator("svg.usage-chart").scroll_into_view_if_needed()
    box = sms.locator("svg.usage-chart").bounding_box()
    assert box is not None
    _point_until_tip(page, box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5)
    expect(page.locator(".chart-tip")).to_contain_text("in the period so far")
    sms.get_by_text("Show the figures by hour").click()
    expect(sms.locator("table tbody tr").first).to_be_visible()
    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5)
    page.screenshot(path=str(SHOTS / "portal-usage-1-chart.png"), full_page=True)

    page.select_option("#usage-period", "1")
    expect(page).to_have_url(f"{live_server.url}/usage/?period=1&granularity=hour")
    expect(page.locator(".page-head")).to_contain_text("Billing period")
    expect(sms.locator("line.forecast")).to_have_count(0)

    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{live_server.url}/usage/")
    expect(phone.locator("#usage-sms svg.usage-chart")).to_be_visible()
    phone_chart = phone.locator("#usage-sms svg.usage-chart")
    phone_chart.scroll_into_view_if_needed()
    phone_chart.click()  # a tap shows the figures of the day under the finger
    expect(phone.locator(".chart-tip")).to_contain_text("in the period so far")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    # The period selector shows its whole choice ("November 2026 (current)"), on a line
    # of its own below its label, rather than "(curren" cut off (issue 11).
    text, room = phone.locator("#usage-period").evaluate(
        """s => {
          const style = getComputedStyle(s), ctx = document.createElement("canvas").getContext("2d");
          ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
          const text = ctx.measureText(s.options[s.selectedIndex].text).width;
          return [text, s.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 20];
        }"""
    )
    assert text <= room, f"the selected period is cut off ({text:.0f}px in {room:.0f}px)"
    # The included label's drawn box is no wider than portal/chart.py reckons when placing
    # it clear of the lines (CHAR_EM ems a character at the phone's 26 units).
    for label in phone.locator("text.included-label").all():
        drawn, reckoned = label.evaluate(
            "(t, em) => [t.getBBox().width, t.textContent.length * 26 * em]", CHAR_EM
        )
        assert drawn <= reckoned, f"{label.text_content()}: {drawn:.0f} > {reckoned:.0f}"
    phone.screenshot(path=str(SHOTS / "portal-usage-2-phone.png"), full_page=True)


def _point_until_tip(page, x: float, y: float) -> None:
    """Point at the chart until its tooltip shows: the page hides the tooltip on a scroll,
    and the scroll that brought the chart into view may land after the first move on a
    loaded machine. A pointer that never brings the tooltip up still fails."""
    for step in range(20):
        page.mouse.move(x, y + step % 2)  # a move to the same spot would send no event
        if page.locator(".chart-tip").is_visible():
            return
        page.wait_for_timeout(250)
    expect(page.locator(".chart-tip")).to_be_visible()
