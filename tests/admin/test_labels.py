"""The console labels every object in words, formats figures for people, lays its own
pages out as the admin's change forms, and reads the labels of a page of objects in a
fixed number of queries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from creditguard.locale_format import money_text
from metering.models import Balance, Channel, Grant
from notifications.models import Notification
from policies.models import LimitRecommendation, LimitRule, OverageCharge, Restriction
from policies.services.restrictions import restriction_apply
from tests.admin.test_console import final_charge, staff  # noqa: F401 (a fixture)
from tests.conftest import World, event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock")


def suspend(tenant, channel: Channel | None = None) -> Restriction:
    return restriction_apply(
        tenant=tenant, channel=channel, kind="suspend", duration=timedelta(hours=2),
        reason="Ticket 1", customer_reason="Unusual traffic", actor=None,
    )  # fmt: skip


def test_objects_are_labelled_in_words(world: World, final_charge: OverageCharge):  # noqa: F811
    sms = Channel.objects.get(code="sms")
    assert str(sms) == sms.name
    amount = money_text(final_charge.amount, "EUR", language="en")
    assert str(final_charge) == f"Alpha · {sms.name} · November 2026 — {amount}"
    balance = Balance.objects.get(tenant=world.alpha, channel=sms)
    assert str(balance) == f"Alpha · {sms.name} · November 2026"
    grant = Grant.objects.filter(balance=balance, kind="included").first()
    assert grant is not None
    assert str(grant) == f"Alpha · {sms.name} · November 2026 — included {grant.units:,}"
    rule = LimitRule.objects.filter(tenant=world.alpha, channel=sms).latest("version")
    assert str(rule) == f"Alpha · {sms.name} · v{rule.version}"
    assert str(suspend(world.beta)) == "Beta · all channels · suspend"
    notice = Notification.objects.filter(tenant=world.beta, kind="restriction_applied").get()
    assert str(notice) == "Restriction applied · Beta"
    assert "/" not in str(final_charge) + str(balance) + str(grant) + str(rule)


def test_the_audit_list_names_each_target_in_a_fixed_number_of_queries(world: World):
    client = staff(superuser=True)
    url = reverse("admin:creditguard_auditentry_changelist")
    sms = Channel.objects.get(code="sms")
    suspend(world.alpha, sms)
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        page = client.get(url)
    html = page.content.decode()
    assert f"Alpha · {sms.name} · suspend" in html
    assert reverse("admin:policies_restriction_change", args=[Restriction.objects.get().pk]) in html
    for number in range(15):  # more targets of the same kinds, and of other tenants
        tenant = TenantFactory.create(slug=f"more-{number}", name=f"More {number}")
        suspend(tenant, sms)
        set_rule(tenant, "sms", included_units=100 + number)
    with CaptureQueriesContext(connection) as many:
        page = client.get(url)
    assert "More 14 · " in page.content.decode()
    assert len(many) == len(few), [q["sql"][:90] for q in many]


@pytest.mark.parametrize("name", ["metering_grant", "metering_ledgerentry", "metering_balance"])
def test_ledger_lists_label_their_rows_in_a_fixed_number_of_queries(world: World, name: str):
    client = staff(superuser=True)
    url = reverse(f"admin:{name}_changelist")
    set_rule(world.alpha, "sms", included_units=100)
    world.alice_api.ingest([event("a", channel="sms", quantity=5)])
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for number in range(10):
        tenant = TenantFactory.create(slug=f"more-{number}", name=f"More {number}")
        set_rule(tenant, "sms", included_units=100 + number)
    with CaptureQueriesContext(connection) as many:
        page = client.get(url)
    assert page.status_code == 200
    assert len(many) == len(few), [q["sql"][:90] for q in many]


def test_the_tenant_page_reads_its_rows_labels_in_a_fixed_number_of_queries(world: World):
    client = staff(superuser=True)
    url = reverse("admin:tenants_tenant_change", args=[world.alpha.pk])
    sms = Channel.objects.get(code="sms")
    suspend(world.alpha, sms)
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for number in range(5):
        set_rule(world.alpha, "sms", included_units=200 + number)
        suspend(world.alpha, sms)
    with CaptureQueriesContext(connection) as many:
        page = client.get(url)
    html = page.content.decode()
    assert f"Alpha · {sms.name} · v" in html
    # The page has other parts whose reads grow with what it shows (its own tests pin
    # them); the rows' labels must not look their tenant, channel or month up one by one.
    assert label_lookups(many) == label_lookups(few), [q["sql"] for q in many]


def label_lookups(queries: CaptureQueriesContext) -> int:
    one_by_one = re.compile(r'FROM "(tenants_tenant|metering_channel|metering_billingperiod)" '
                            r'WHERE "\1"."id" = ')  # fmt: skip
    return sum(1 for query in queries.captured_queries if one_by_one.search(query["sql"]))


def test_trends_are_percentages_and_factors_a_table(world: World, final_charge: OverageCharge):  # noqa: F811
    LimitRecommendation.objects.create(
        tenant=world.alpha, channel=Channel.objects.get(code="sms"), computed_at=timezone.now(),
        current_included=1000, suggested_included=1200, suggested_hard_limit=200,
        own_trend=0.1290804643759722, system_load=0.00067, cohort="retail", cohort_size=3,
        explanation="Grows 13 % a month.",
    )  # fmt: skip
    client = staff(superuser=True)
    recommendations = client.get(
        reverse("admin:policies_limitrecommendation_changelist")
    ).content.decode()
    assert "+12.9 %" in recommendations and "0.1290804643759722" not in recommendations
    assert "1,000 → 1,200" in recommendations
    charges = client.get(reverse("admin:policies_overagecharge_changelist")).content.decode()
    assert '<table class="console-factors">' in charges and "Relationship" in charges
    page = client.get(reverse("admin:policies_overagecharge_change", args=[final_charge.pk]))
    html = page.content.decode()
    assert '<table class="console-factors">' in html and "share_of_period_usage" not in html
    assert 'name="_save"' not in html  # decided with the action, never saved here


@pytest.mark.parametrize(
    "name", ["policies_tenant_restrict", "policies_tenant_limit", "policies_tenant_reduce"]
)
def test_custom_pages_use_the_admins_form_layout(world: World, name: str):
    client = staff(superuser=True)
    url = reverse(f"admin:{name}", args=[world.alpha.pk])
    html = client.get(url).content.decode()
    assert "admin/css/forms.css" in html and 'class="module aligned' in html
    assert 'id="id_reason_helptext"' in html  # help text under its field, as the admin does
    invalid = client.post(url, {"reason": ""}).content.decode()
    assert 'class="errornote"' in invalid
    assert 'class="form-row errors field-reason"' in invalid  # the error beside its field


def test_action_pages_use_the_admins_form_layout(world: World):
    page = staff(superuser=True).post(
        reverse("admin:tenants_tenant_changelist"),
        {"action": "restrict_bulk", "_selected_action": [world.beta.pk]},
    )
    html = page.content.decode()
    assert "admin/css/forms.css" in html and 'class="module aligned' in html
    assert "Beta" in html and 'id="id_customer_reason_helptext"' in html


@pytest.mark.parametrize(
    ("days", "words"),
    [
        (None, "A new customer (less than a day)"),
        (-1, "A new customer (less than a day)"),
        (0, "A new customer (less than a day)"),
        (1, "A customer for 1 day;"),
        (1092, "A customer for 1,092 days;"),
    ],
)
def test_the_factors_say_how_long_a_tenant_has_been_a_customer(days, words):
    from console.admin.overage import factors_table

    charge = OverageCharge(currency="EUR", factors={"relationship": {"tenure_days": days}})
    html = factors_table(charge)
    assert words in html
    assert "days a customer" not in html and "new a customer" not in html


def test_the_console_writes_instants_one_way_with_their_zone(settings):
    """Audit, anomaly alerts, restrictions and the ledger lists: the console's zone
    (settings.TIME_ZONE), its label beside the time."""
    from datetime import UTC, datetime

    from console.admin.common import short_instant
    from console.formats import staff_instant

    moment = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert staff_instant(moment) == short_instant(moment) == "2026-11-30 23:00 UTC"
    settings.TIME_ZONE = "Europe/Berlin"
    assert staff_instant(moment) == "2026-12-01 00:00 CET"


def test_money_is_written_one_way_in_the_console(world: World):
    """ "€29.00" everywhere, never "29.00" beside a column "EUR" (issue 13)."""
    from decimal import Decimal

    from policies.models import TopUpPack
    from policies.services.topups import topup_offer_accept, topup_offer_create

    sms = Channel.objects.get(code="sms")
    pack = TopUpPack.objects.create(channel=sms, units=500, price=Decimal("29.00"))
    offer = topup_offer_create(tenant=world.alpha, pack=pack, actor=None)
    topup_offer_accept(tenant=world.alpha, public_id=offer.public_id)
    client = staff(superuser=True)
    for url in [
        reverse("admin:policies_topuppack_changelist"),
        reverse("admin:policies_topupoffer_changelist"),
        reverse("admin:tenants_tenant_change", args=[world.alpha.pk]),
    ]:
        html = re.sub(r"<[^>]+>", " ", client.get(url).content.decode())
        assert "€29.00" in html, url
        assert not re.search(r"29\.00\s+EUR", html), url


def test_the_tenant_lists_pending_overage_is_money_as_the_console_writes_it(world: World):
    from decimal import Decimal
    from typing import Any

    from django.contrib import admin

    from console.admin.tenants import TenantAdmin
    from tenants.models import Tenant

    tenant_admin = TenantAdmin(Tenant, admin.site)
    tenant: Any = world.alpha
    tenant.pending_total = Decimal("31.7")  # the changelist's annotation
    assert tenant_admin.pending_overage(tenant) == "€31.70"
    tenant.pending_total = None
    assert tenant_admin.pending_overage(tenant) == "—"
