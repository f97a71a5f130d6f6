"""The QA walkthrough's small findings (issue 11): "Mark all as read" says it did, the
forecast names its unit, and /favicon.ico is served."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from tests.policies.helpers import set_rule
from tests.portal.test_notifications import notification
from tests.portal.test_overview import ingest, text

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_clock")]


def test_mark_all_as_read_says_so(people):
    notification(people.alpha)
    viewer = people.client(people.viewer)
    page = viewer.post("/notifications/read/", {"all": "1"}, follow=True)
    assert "All notifications are marked as read." in page.content.decode()
    # One marked read changes its row only.
    n = notification(people.alpha, minutes_ago=1)
    page = viewer.post("/notifications/read/", {"id": str(n.public_id)}, follow=True)
    assert "marked as read." not in page.content.decode()


def test_the_forecast_names_its_unit(people):
    set_rule(people.alpha, "sms", included_units=2000)
    ingest(people.alpha, "sms", 300)  # within the credits at this rate: the use forecast
    body = text(people.client(people.viewer).get("/dashboard/"))
    assert re.search(
        r"you use about [\d,]+ units this period(, within your limit)? \(unit: segment\)\.", body
    )
    people.alpha.language = "de"
    people.alpha.save()
    body = text(people.client(people.viewer).get("/dashboard/"))
    assert re.search(
        r"etwa [\d.]+ Einheiten(, innerhalb Ihres Limits)? \(Einheit: Segment\)\.", body
    ), body


def test_the_favicon_is_served_and_linked(people):
    response = Client().get("/favicon.ico")
    assert response.status_code == 302 and response["Location"].endswith("portal/favicon.svg")
    assert finders.find("portal/favicon.svg")
    login = Client().get("/login/").content.decode()
    assert re.search(r'<link rel="icon" href="[^"]*portal/favicon\.svg"', login)
    page = people.client(people.viewer).get("/dashboard/").content.decode()
    assert 'rel="icon"' in page
