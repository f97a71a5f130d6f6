"""The demo's customer logins, as the run command prints them, open the portal."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from tenants.models import Membership

pytestmark = pytest.mark.django_db


def test_the_printed_customer_logins_open_the_portal_one_per_role():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    printed = out.getvalue()
    assert "/login/" in printed
    logins = re.findall(r"^\s+(owner|admin|viewer)\s+(\S+) / (\S+)$", printed, re.M)
    assert sorted(role for role, _, _ in logins) == ["admin", "owner", "viewer"]
    for role, username, password in logins:
        client = Client()
        response = client.post("/login/", {"username": username, "password": password})
        assert response.status_code == 302 and response["Location"] == "/dashboard/", username
        page = client.get("/dashboard/").content.decode()
        # The account it opens (the title's), not only one the switcher offers: the
        # owner is a viewer of Alpenblick Hotels AG, first by name, and lands at Nordlicht.
        assert re.search(r"<title>[^<]* · Nordlicht Möbel GmbH · CreditGuard</title>", page)
        membership = Membership.objects.get(
            user__username=username, tenant__slug="nordlicht-moebel"
        )
        assert membership.role == role
    # The owner also belongs to a second tenant, to switch to.
    assert Membership.objects.filter(user__username=logins[0][1]).count() == 2
