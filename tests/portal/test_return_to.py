"""After a form is answered on its action's own URL (a new key, a refused alert), the
header's language and account switches send the person back to a page that answers GET,
not to the POST-only URL (issue 11: a blank "HTTP ERROR 405")."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def _next_values(page: str) -> list[str]:
    return re.findall(r'<input type="hidden" name="next" value="([^"]*)">', page)


def test_the_switches_after_a_new_key_go_back_to_the_developers_page(people):
    client = people.client(people.both)
    response = client.post("/developers/keys/", {"name": "Shop", "scopes": ["usage:read"]})
    assert response.status_code == 200
    # Both the account switcher and the language switch.
    assert _next_values(response.content.decode()) == ["/developers/", "/developers/"]
    assert client.get("/developers/keys/").status_code == 405  # what it used to send


def test_the_switches_after_a_refused_alert_go_back_to_the_notifications_page(people):
    client = people.client(people.both)
    response = client.post("/notifications/alerts/", {"channel": "nothing", "percent": "x"})
    assert response.status_code == 400
    assert _next_values(response.content.decode()) == ["/notifications/", "/notifications/"]


def test_a_get_page_keeps_its_own_address_and_query(people):
    page = people.client(people.both).get("/usage/?period=2&granularity=hour").content.decode()
    assert _next_values(page) == ["/usage/?period=2&amp;granularity=hour"] * 2


@pytest.mark.parametrize(
    ("sent", "lands"),
    [
        ("/developers/keys/", "/developers/"),
        ("/developers/webhooks/", "/developers/"),
        ("/notifications/alerts/", "/notifications/"),
        ("/team/invite/", "/team/"),
        ("/credits/packs/1/buy/", "/credits/"),
        ("/limits/requests/", "/limits/requests/"),
        ("/no/such/page/", "/dashboard/"),
    ],
)
def test_the_account_switch_never_lands_on_a_post_only_url(people, sent, lands):
    client = people.client(people.both)
    response = client.post("/account/switch/", {"tenant": "beta", "next": sent})
    assert response.status_code == 302 and response["Location"] == lands
    assert client.get(response["Location"]).status_code == 200
