"""The console's what-if page (issue 13): every role previews a limit change or a fee
schedule on a tenant or a cohort; Administrators apply it in one step after confirming,
with a message saying how many tenants changed and how many were told; bad input is an
error on the page, never a 500."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from creditguard.models import AuditEntry
from metering.models import Channel
from notifications.models import Notification
from policies.models import FeeSchedule, LimitRule
from policies.roles import ADMINISTRATORS
from tests.admin.test_roles import signed_in
from tests.conftest import World, event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

PREVIEW = "admin:policies_limitrule_whatif"
APPLY = "admin:policies_limitrule_whatif_apply"


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


@pytest.fixture
def shops(world: World) -> World:
    """Alpha and beta are retail × 50–249 (the factory's), gamma finance; alpha has used
    800 of its 1000 SMS this period."""
    for tenant in (world.alpha, world.beta):
        set_rule(tenant, "sms", included_units=1000, action="charge_overage")
    world.gamma.industry = "finance"
    world.gamma.save()
    world.alice_api.ingest([event("a", channel="sms", quantity=800)])
    return world


def query(**fields) -> dict[str, str]:
    sms = Channel.objects.get(code="sms")
    return {"channel": str(sms.pk), "industry": "retail", "size_band": "50-249", **fields}


def preview(client, **fields):
    return client.get(f"{reverse(PREVIEW)}?{urlencode(query(**fields))}")


@pytest.mark.parametrize("role", ["Support", "Billing", ADMINISTRATORS])
def test_every_role_previews_a_cohort(shops: World, role: str):
    _, client = signed_in(role)
    response = preview(client, included_units="500", hard_limit="100")
    assert response.status_code == 200
    page = text(response)
    assert "Retail × 50–249 employees · SMS: 2 tenants" in page
    rows = response.context_data["preview"].rows
    assert [row.slug for row in rows] == ["alpha", "beta"]
    alpha = rows[0]
    assert alpha.this is not None and alpha.this[1].credits == 500
    assert "2 tenants would change" in page and "2 would be notified of worse terms" in page
    may_apply = role == ADMINISTRATORS
    assert (response.context_data["apply_form"] is not None) == may_apply
    assert ('value="Apply to 2 tenants"' in response.content.decode()) == may_apply


def test_administrators_apply_after_confirming(shops: World):
    user, client = signed_in(ADMINISTRATORS)
    fields = {"included_units": "500", "fee_mode": "graduated", "fee_currency": "EUR",
              "fee_tiers": "100:0.08, :0.05"}  # fmt: skip
    shown = preview(client, **fields)
    digest = shown.context_data["apply_form"].initial["digest"]
    before, told = LimitRule.objects.count(), Notification.objects.filter(kind="limit_changed")
    told_before = told.count()
    unconfirmed = client.post(reverse(APPLY), {**query(**fields), "digest": digest,
                                               "reason": "Retail review"})  # fmt: skip
    assert unconfirmed.status_code == 400 and LimitRule.objects.count() == before
    response = client.post(reverse(APPLY), {**query(**fields), "digest": digest,
                                            "reason": "Retail review", "confirm": "on"})  # fmt: skip
    assert response.status_code == 302
    message = [str(m) for m in get_messages(response.wsgi_request)][-1]
    assert "2 tenants changed; 2 notified of worse terms" in message
    assert "2 told of the new fee schedule" in message
    assert set(LimitRule.objects.filter(author=user).values_list("tenant__slug", flat=True)) == {
        "alpha",
        "beta",
    }
    assert set(FeeSchedule.objects.filter(author=user).values_list("tenant__slug", flat=True)) == {
        "alpha",
        "beta",
    }
    assert told.count() == told_before + 2
    assert AuditEntry.objects.get(action="whatif.apply").actor == user


def test_a_preview_grown_stale_is_not_applied(shops: World):
    _, client = signed_in(ADMINISTRATORS)
    digest = preview(client, included_units="2000").context_data["apply_form"].initial["digest"]
    TenantFactory.create(slug="newcomer", name="Newcomer")  # joins the cohort meanwhile
    before = LimitRule.objects.count()
    response = client.post(reverse(APPLY), {**query(included_units="2000"), "digest": digest,
                                            "reason": "more", "confirm": "on"})  # fmt: skip
    assert response.status_code == 400
    assert "preview again" in text(response)
    assert LimitRule.objects.count() == before


@pytest.mark.parametrize("role", ["Support", "Billing"])
def test_other_roles_cannot_apply(shops: World, role: str):
    _, client = signed_in(role)
    digest = "0" * 32
    response = client.post(reverse(APPLY), {**query(included_units="1"), "digest": digest,
                                            "reason": "x", "confirm": "on"})  # fmt: skip
    assert response.status_code == 403
    assert not LimitRule.objects.filter(included_units=1).exists()


@pytest.mark.parametrize(
    "fields",
    [
        {"warning_thresholds": "fifty"},
        {"warning_thresholds": "90, 50"},
        {"tenant": "nobody"},
        {"tenant": "alpha"},  # and a cohort
        {"fee_mode": "graduated", "fee_tiers": "100:0.1, 50:0.2"},
        {"fee_mode": "volume", "fee_tiers": "x:1"},
        {"action": "restrict"},  # without its cap
        {"included_units": "-1"},
        {"hard_limit": "5", "no_ceiling": "on"},
        {},
    ],
    ids=str,
)
def test_bad_input_is_an_error_on_the_page(shops: World, fields):
    _, client = signed_in(ADMINISTRATORS)
    response = preview(client, **fields)
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    assert response.context_data["preview"] is None


def test_one_tenant_and_the_pages_queries(shops: World, django_assert_max_num_queries):
    _, client = signed_in("Support")
    sms = Channel.objects.get(code="sms")
    url = f"{reverse(PREVIEW)}?{urlencode({'channel': sms.pk, 'tenant': 'gamma', 'included_units': 50})}"
    with django_assert_max_num_queries(12):
        response = client.get(url)
    assert response.status_code == 200
    assert [row.slug for row in response.context_data["preview"].rows] == ["gamma"]
    assert "Gamma" in text(response)


def test_carry_over_can_be_proposed_and_its_end_is_worse_terms(shops: World):
    _, client = signed_in(ADMINISTRATORS)
    response = preview(client, carry_over="carry")
    assert response.status_code == 200, text(response)
    assert "Overage at the period" in text(response)
    rows = response.context_data["preview"].rows
    assert {(row.current.carry_over, row.proposed.carry_over) for row in rows} == {
        ("forgive", "carry")
    }
    assert not any(row.worse for row in rows)  # better terms: in force at once
    set_rule(shops.alpha, "sms", included_units=1000, action="charge_overage", carry_over="carry")
    ending = preview(client, carry_over="forgive").context_data["preview"]
    assert [row.slug for row in ending.worse] == ["alpha"]
    assert "carry_over" in ending.worse[0].worse
