"""The usage page offers the periods from the account's beginning on, not twelve months
back whatever its age (issue 11: a new account's selector listed July 2026 with
"Included 10,000" and nothing used — figures it never had)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from metering.services.ingest import usage_record_batch
from portal.usage import oldest_period_ago
from tenants.models import Tenant
from tests.conftest import NOW, event

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_clock")]


def offered(html: str) -> list[str]:
    start = html.index('id="usage-period"')
    select = html[start : html.index("</select>", start)]
    return re.findall(r'<option value="(\d+)"', select)


def test_a_new_account_is_offered_its_current_period_only(people):
    client = people.client(people.viewer)
    page = client.get("/usage/")
    assert offered(page.content.decode()) == ["0"]
    # Last period, before the account existed: the fallback and its note.
    older = client.get("/usage/?period=1")
    assert older.status_code == 200 and older.context["usage"].periods_ago == 0
    assert "That billing period is not available" in older.content.decode()
    assert client.get("/usage/export.csv?period=1").status_code == 400
    assert client.get("/usage/export.csv?period=0").status_code == 200


def test_an_account_with_history_goes_back_to_its_first_period(people):
    # Usage in September 2026 (two periods before NOW's November): three periods offered,
    # though the account's row was created today (as the demo's and imported accounts).
    september = datetime(2026, 9, 10, 12, 0, tzinfo=NOW.tzinfo)
    usage_record_batch(
        tenant=people.alpha,
        payload={
            "events": [event("s1", channel="sms", quantity=5, occurred_at=september.isoformat())]
        },
        now=september + timedelta(minutes=1),
    )
    assert oldest_period_ago(tenant=people.alpha) == 2
    client = people.client(people.viewer)
    assert offered(client.get("/usage/").content.decode()) == ["0", "1", "2"]
    page = client.get("/usage/?period=2")
    assert page.context["usage"].periods_ago == 2
    assert "That billing period is not available" not in page.content.decode()
    assert client.get("/usage/?period=3").context["usage"].periods_ago == 0
    assert client.get("/usage/export.csv?period=2").status_code == 200
    assert client.get("/usage/export.csv?period=3").status_code == 400


def test_an_account_created_long_ago_is_offered_twelve_periods_back(people):
    Tenant.objects.filter(pk=people.alpha.pk).update(created_at=NOW - timedelta(days=800))
    people.alpha.refresh_from_db()
    assert oldest_period_ago(tenant=people.alpha) == 12
    html = people.client(people.viewer).get("/usage/").content.decode()
    assert offered(html) == [str(n) for n in range(13)]
