"""Limit requests (/limits/requests/): admins and owners ask for other credits on a channel
through limit_request_create, every member follows the decisions; another tenant's
requests are never shown; bad input is an error on the form, never a 500."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from metering.models import Channel
from policies.models import LimitRequest
from policies.services.limit_requests import (
    limit_request_approve,
    limit_request_create,
    limit_request_decline,
)
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.django_db
URL = "/limits/requests/"


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def ask(client: Client, **fields) -> Any:
    data = {"channel": "sms", "included_units": "5000", "expected_volume": "4500",
            "reason": "Black Friday campaign", **fields}  # fmt: skip
    return client.post(URL, data)


def request_of(tenant, units: int = 5000, channel: str = "sms") -> LimitRequest:
    return limit_request_create(
        tenant=tenant, channel=Channel.objects.get(code=channel), included_units=units,
        expected_volume=units, reason=f"Need {units}", requested_by=None,
    )  # fmt: skip


@pytest.fixture
def terms(people):
    set_rule(people.alpha, "sms", included_units=1000)
    set_rule(people.beta, "sms", included_units=1000)
    return people


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_user("stella", is_staff=True)


def test_an_admin_asks_for_more_credits(terms):
    client = terms.client(terms.admin)
    response = ask(client)
    assert response.status_code == 302 and response["Location"] == URL
    request = LimitRequest.objects.get(tenant=terms.alpha)
    assert (request.included_units, request.expected_volume, request.current_included_units) == (
        5000, 4500, 1000,
    )  # fmt: skip
    assert (request.requested_by, request.status) == (terms.admin, "open")
    body = text(client.get(URL))
    assert "Your request is sent. We will notify you of the decision." in body
    assert "SMS: 5,000 units per period" in body and "Black Friday campaign" in body
    assert "before: 1,000 · expected use: 4,500" in body
    assert "Open" in body


def test_the_form_offers_each_active_channel_with_its_credits_now(terms):
    body = text(terms.client(terms.owner).get(URL))
    assert "SMS (now 1,000 per period)" in body
    assert "Send the request" in body


def test_a_viewer_reads_the_requests_but_cannot_ask(terms):
    request_of(terms.alpha)
    client = terms.client(terms.viewer)
    body = text(client.get(URL))
    assert "Need 5000" in body
    assert "Send the request" not in body
    assert "An admin or owner of your account can ask for a different limit." in body
    assert ask(client).status_code == 403
    assert LimitRequest.objects.count() == 1


def test_another_tenants_requests_are_never_shown(terms):
    request_of(terms.beta, units=7777)
    body = text(terms.client(terms.owner).get(URL))
    assert "7,777" not in body and "Need 7777" not in body
    assert "No requests yet." in body


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"included_units": "-5"}, "greater than or equal to 0"),
        ({"included_units": "lots"}, "Enter a whole number."),
        ({"included_units": "1000"}, "Ask for other credits than the ones you have now."),
        ({"expected_volume": ""}, "This field is required."),
        ({"reason": "   "}, "This field is required."),
        ({"channel": "pigeon"}, "Select a valid choice."),
        ({"included_units": "99999999999999999999"}, "less than or equal to"),
    ],
)
def test_bad_input_is_an_error_on_the_form(terms, fields, error):
    response = ask(terms.client(terms.admin), **fields)
    assert response.status_code == 400
    assert error in text(response)
    assert not LimitRequest.objects.exists()


def test_a_second_open_request_on_a_channel_is_an_error_on_the_form(terms):
    client = terms.client(terms.admin)
    ask(client)
    response = ask(client, included_units="6000")
    assert response.status_code == 400
    assert "There is an open request for this channel already" in text(response)
    assert LimitRequest.objects.count() == 1


def test_the_form_needs_its_csrf_token(terms):
    client = terms.client(terms.admin, enforce_csrf_checks=True)
    assert ask(client).status_code == 403
    assert not LimitRequest.objects.exists()


def test_decisions_are_shown_with_their_reason(terms, staff, frozen_clock):
    limit_request_approve(
        limit_request=request_of(terms.alpha), reason="ok", customer_reason="Enjoy", actor=staff
    )
    set_rule(terms.alpha, "email", included_units=1000)
    limit_request_decline(
        limit_request=request_of(terms.alpha, units=9000, channel="email"),
        customer_reason="Your use is far below your credits.", actor=staff,
    )  # fmt: skip
    body = text(terms.client(terms.viewer).get(URL))
    assert "Approved: 5,000 units per period, in force now." in body
    assert "Our note: Enjoy" in body
    assert "Declined: Your use is far below your credits." in body


def test_fewer_credits_approved_say_from_when(terms, staff, frozen_clock):
    limit_request_approve(
        limit_request=request_of(terms.alpha, units=400), reason="ok", actor=staff
    )
    body = text(terms.client(terms.viewer).get(URL))
    assert re.search(r"Approved: 400 units per period from 1 \w+ \d{4}\.", body), body


def test_the_page_speaks_german_for_a_german_tenant(terms):
    request_of(terms.beta, units=2500)
    body = text(terms.client(terms.beta_owner).get(URL))
    assert "Limitanfragen" in body
    assert "2.500 Einheiten pro Zeitraum" in body
    assert "Offen" in body


@pytest.mark.parametrize("count", [0, 3, 12])
def test_the_page_takes_a_fixed_number_of_queries(terms, staff, count, django_assert_num_queries):
    channels = list(Channel.objects.filter(active=True))
    for index in range(count):
        request = request_of(terms.alpha, units=2000 + index, channel=channels[index % 2].code)
        limit_request_decline(limit_request=request, customer_reason="no", actor=staff)
    client = terms.client(terms.owner)
    # session, user, memberships; channels, the rules in force; the requests; the unread
    # notifications beside the menu
    with django_assert_num_queries(7):
        assert client.get(URL).status_code == 200


def test_a_decision_in_the_notifications_links_to_the_requests(terms, staff):
    limit_request_decline(limit_request=request_of(terms.alpha), customer_reason="no", actor=staff)
    response = terms.client(terms.viewer).get("/notifications/")
    assert "SMS: your limit request is declined" in text(response)
    assert f'href="{URL}"' in response.content.decode()
