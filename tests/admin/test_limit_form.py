"""The change-a-limit page takes an effective date and the enforcement flag with the reason
the customer reads, and lists the versions scheduled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from notifications.models import Notification
from policies.models import LimitRule
from tenants.models import Tenant
from tests.admin.test_write_paths import as_posted, limit_page, superuser
from tests.conftest import NOW, World
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock")


@pytest.fixture(autouse=True)
def _notice(settings):
    settings.LIMIT_NOTICE_DAYS = 14


@pytest.fixture
def capped(world: World) -> Tenant:
    set_rule(world.alpha, "sms", included_units=100, hard_limit=50)
    return world.alpha


def post(tenant: Tenant, **changes: str):
    _, client = superuser()
    return post_as(client, tenant, **changes)


def post_as(client, tenant: Tenant, **changes: str):
    data = as_posted(limit_page(client, tenant).context["form"])
    # Worse terms are confirmed first (tests/admin/test_confirm.py); these tests post the
    # confirmed form.
    data.update({"confirmed": "1", **changes})
    return client.post(reverse("admin:policies_tenant_limit", args=[tenant.pk]), data)


def latest_rule(tenant: Tenant) -> LimitRule:
    return LimitRule.objects.filter(tenant=tenant, channel__code="sms").latest("version")


def test_a_worse_change_from_the_form_waits_for_the_notice(capped: Tenant):
    response = post(capped, hard_limit="20", reason="Review")
    assert response.status_code == 302
    rule = latest_rule(capped)
    assert (rule.hard_limit, rule.effective_from) == (20, NOW + timedelta(days=14))
    assert Notification.objects.filter(tenant=capped, kind="limit_changed").count() == 2


def test_the_form_takes_an_effective_date_in_the_tenants_time_zone(capped: Tenant):
    response = post(capped, hard_limit="20", effective_from="2026-12-10 00:00", reason="Review")
    assert response.status_code == 302
    # Midnight in Berlin.
    assert latest_rule(capped).effective_from == datetime(2026, 12, 9, 23, 0, tzinfo=UTC)


def test_an_effective_date_inside_the_notice_is_shown_on_the_form(capped: Tenant):
    response = post(capped, hard_limit="20", effective_from="2026-11-22 00:00", reason="Review")
    assert response.status_code == 200
    assert "no earlier than" in str(response.context["form"].errors["effective_from"])
    assert latest_rule(capped).hard_limit == 50


def test_an_enforcement_measure_from_the_form_applies_at_once(capped: Tenant):
    response = post(
        capped, action="suspend", immediate_as_enforcement="on",
        customer_reason="Reported as spam.", reason="Abuse desk",
    )  # fmt: skip
    assert response.status_code == 302
    rule = latest_rule(capped)
    assert (rule.action, rule.effective_from) == ("suspend", NOW)
    notice = Notification.objects.filter(tenant=capped, kind="limit_changed").latest("pk")
    assert notice.payload["customer_reason"] == "Reported as spam."


def test_the_page_lists_the_scheduled_versions(capped: Tenant):
    _, client = superuser()
    post_as(client, capped, hard_limit="20", reason="Review")
    html = limit_page(client, capped).content.decode()
    assert "Scheduled versions" in html and "2026-12-04 13:00 CET" in html
