"""The staff console's queue of limit requests: reviewed beside the tenant's usage, the
terms in force and the latest recommendation with its cohort; approved (a rule version) or
declined with a customer reason by Administrators, through the services; errors on the
form, never a 500."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from metering.models import Balance, Channel
from metering.services.ingest import usage_record_batch
from metering.services.periods import period_bounds
from notifications.models import Notification
from policies.models import LimitRequest
from policies.roles import ADMINISTRATORS
from policies.selectors import effective_rule
from policies.services.close import periods_close_due
from policies.services.limit_requests import limit_request_create, limit_request_decline
from policies.services.recommend import recommendations_compute
from tests.admin.test_roles import signed_in
from tests.conftest import World, event
from tests.policies.helpers import set_rule


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def ask(tenant, units: int = 5000, channel: str = "sms") -> LimitRequest:
    return limit_request_create(
        tenant=tenant, channel=Channel.objects.get(code=channel), included_units=units,
        expected_volume=4500, reason="Black Friday campaign", requested_by=None,
    )  # fmt: skip


@pytest.fixture
def asked(world: World) -> LimitRequest:
    set_rule(world.alpha, "sms", included_units=1000)
    world.alice_api.ingest([event("a", channel="sms", quantity=800)])
    recommendations_compute(tenants=[world.alpha])
    return ask(world.alpha)


def url(name: str, request: LimitRequest) -> str:
    return reverse(f"admin:policies_limitrequest_{name}", args=[request.pk])


def test_the_queue_lists_open_requests_first_oldest_first(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    set_rule(world.beta, "sms", included_units=1000)
    decided = ask(world.alpha, units=3000)
    limit_request_decline(limit_request=decided, customer_reason="no", actor=None)
    first, second = ask(world.beta, units=4000), ask(world.alpha, units=6000)
    _, client = signed_in("Support")
    response = client.get(reverse("admin:policies_limitrequest_changelist"))
    assert response.status_code == 200
    shown = [row.pk for row in response.context_data["cl"].result_list]
    assert shown == [first.pk, second.pk, decided.pk]
    assert "Review and decide" in text(response)


def test_the_review_shows_usage_terms_and_the_recommendation_beside_the_request(asked):
    _, client = signed_in("Support")
    response = client.get(url("review", asked))
    assert response.status_code == 200
    body = text(response)
    assert "Black Friday campaign" in body and "5,000 included per period" in body
    review = response.context_data["review"]
    assert [b.used for b in review.history] == [800]
    assert review.rule.included_units == 1000
    recommendation = review.recommendation
    assert recommendation is not None
    assert f"{recommendation.suggested_included:,} included" in body
    assert recommendation.cohort in body
    # Support reads it, but deciding a limit is the Administrators'.
    assert response.context_data["approve_form"] is None
    assert response.context_data["decline_form"] is None
    assert "Only Administrators decide on limit requests." in body


def test_an_administrator_approves_with_another_figure(asked, frozen_clock):
    user, client = signed_in(ADMINISTRATORS)
    review = client.get(url("review", asked))
    assert review.context_data["approve_form"].initial == {"included_units": 5000}
    response = client.post(
        url("approve", asked),
        {"included_units": "4000", "reason": "The recommendation", "customer_reason": "Enjoy"},
    )
    assert response.status_code == 302
    asked.refresh_from_db()
    assert (asked.status, asked.approved_included_units, asked.decided_by) == (
        "approved", 4000, user,
    )  # fmt: skip
    tenant, sms = asked.tenant, asked.channel
    assert effective_rule(tenant=tenant, channel=sms, at=timezone.now()).included_units == 4000
    note = Notification.objects.get(tenant=tenant, kind="limit_request_approved")
    assert note.payload["reason"] == "Enjoy"


def test_an_administrator_declines_with_a_reason_for_the_customer(asked):
    user, client = signed_in(ADMINISTRATORS)
    response = client.post(url("decline", asked), {"customer_reason": "Use is below 1,000."})
    assert response.status_code == 302
    asked.refresh_from_db()
    assert (asked.status, asked.customer_reason, asked.decided_by) == (
        "declined", "Use is below 1,000.", user,
    )  # fmt: skip
    assert Notification.objects.filter(kind="limit_request_declined").count() == 1


@pytest.mark.parametrize(
    ("name", "data", "error"),
    [
        ("approve", {"included_units": "4000", "reason": ""}, "This field is required."),
        ("approve", {"included_units": "-1", "reason": "x"}, "greater than or equal to 0"),
        ("decline", {"customer_reason": "  "}, "This field is required."),
    ],
)
def test_bad_input_is_an_error_on_the_form(asked, name, data, error):
    _, client = signed_in(ADMINISTRATORS)
    response = client.post(url(name, asked), data)
    assert response.status_code == 400
    assert error in text(response)
    asked.refresh_from_db()
    assert asked.status == "open"


def test_deciding_a_decided_request_is_an_error_on_the_form(asked):
    _, client = signed_in(ADMINISTRATORS)
    client.post(url("decline", asked), {"customer_reason": "no"})
    response = client.post(url("approve", asked), {"included_units": "4000", "reason": "x"})
    assert response.status_code == 400
    assert "This request was declined already." in text(response)
    asked.refresh_from_db()
    assert asked.status == "declined"


@pytest.mark.parametrize("role", ["Support", "Billing"])
def test_only_administrators_decide(asked, role):
    _, client = signed_in(role)
    assert client.post(
        url("approve", asked), {"included_units": "1", "reason": "x"}
    ).status_code == (403)
    assert client.post(url("decline", asked), {"customer_reason": "no"}).status_code == 403
    asked.refresh_from_db()
    assert asked.status == "open"


def test_a_closed_month_reads_used_of_included_as_the_billing_export_does(world: World):
    """After the close a balance's ``available`` holds only what was drawn (1,415 of
    2,000): the review read 1415/1415 = 100 %. It shows the included credits granted."""
    sms = Channel.objects.get(code="sms")
    now = timezone.now()
    last_month = period_bounds(tenant=world.alpha, at=now).starts_at - timedelta(days=10)
    usage_record_batch(
        tenant=world.alpha,
        payload={"events": [event("past", quantity=1415, occurred_at=last_month.isoformat())]},
        now=last_month + timedelta(minutes=1),
    )  # fmt: skip
    periods_close_due(now=now)
    closed = Balance.objects.get(tenant=world.alpha, channel=sms, period__status="closed")
    assert closed.available == 1415  # what made the old page read 100 %
    request = ask(world.alpha, units=4500)
    _, client = signed_in("Support")
    body = text(client.get(url("review", request)))
    assert f"{closed.period.label} Closed 1,415 2,000 0 71 %" in body
    assert "Asks for 4,500 included per period (had 2,000 when asking)" in body
    assert "Channel SMS (counted per segment)" in body
    assert "Notify only (staff decide on fees)" in body and "Forgive at reset" in body
    assert "sms (segment)" not in body and "notify_only" not in body


def test_the_changelist_links_a_request_to_its_review(asked):
    _, client = signed_in("Support")
    response = client.get(reverse("admin:policies_limitrequest_changelist"))
    review = url("review", asked)
    assert f'<a href="{review}">#{asked.pk}</a>' in response.content.decode()
    assert "5,000" in text(response)
    change = reverse("admin:policies_limitrequest_change", args=[asked.pk])
    assert client.get(change)["Location"] == review
