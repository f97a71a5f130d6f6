"""The demo's staff side, as the run command prints it: one login per role beside the
superuser, each let into the console to do what its role allows and refused the rest; a
closed last month whose final overage charges wait in the start page's queue, and the
customer's limit request in its own."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from policies.models import OverageCharge
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def test_each_printed_staff_login_opens_the_console_and_acts_as_its_role_allows():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    printed = out.getvalue()
    assert re.search(r"Staff login \(admin\): staff / creditguard-staff \(superuser\)", printed)
    logins = dict(
        (role, (username, password))
        for role, username, password in re.findall(
            r"^\s+(Support|Billing|Administrators)\s+(\S+) / (\S+)$", printed, re.M
        )
    )
    assert sorted(logins) == ["Administrators", "Billing", "Support"]

    # Last month closed with final charges awaiting a decision, priced by the fee schedules.
    final = OverageCharge.objects.filter(
        status="pending", finalized_at__isnull=False, period__status="closed"
    ).select_related("tenant", "channel")
    assert {(c.tenant.slug, c.channel.code) for c in final} >= {
        ("brightcart", "sms"), ("swiftfreight", "call"),
    }  # fmt: skip
    assert all(charge.amount > 0 for charge in final)

    tenant = Tenant.objects.get(slug="brightcart")
    may = {  # each role's own pages: who may open them
        reverse("admin:policies_tenant_restrict", args=[tenant.pk]): {"Support", "Administrators"},
        reverse("admin:policies_tenant_limit", args=[tenant.pk]): {"Administrators"},
    }
    for role, (username, password) in logins.items():
        client = Client()
        response = client.post(
            "/admin/login/?next=/admin/", {"username": username, "password": password}
        )
        assert response.status_code == 302 and response["Location"] == "/admin/", role
        start = client.get("/admin/").content.decode()
        queue = re.search(r'<tr class="queue-overage">\s*<td class="count">(\d+)</td>', start)
        assert queue is not None and int(queue.group(1)) == len(final), role
        requests = re.search(r'<tr class="queue-limit_requests">\s*<td class="count">(\d+)', start)
        assert requests is not None and int(requests.group(1)) == 1, role
        # The overage queue's list offers the decision to Billing and Administrators only.
        charges = client.get(reverse("admin:policies_overagecharge_changelist") + "?ready=yes")
        assert charges.context["cl"].result_count == len(final)
        action_form = charges.context.get("action_form")
        actions = dict(action_form.fields["action"].choices) if action_form else {}
        assert ("decide" in actions) == (role in {"Billing", "Administrators"}), role
        for url, roles in may.items():
            assert client.get(url).status_code == (200 if role in roles else 403), (role, url)
