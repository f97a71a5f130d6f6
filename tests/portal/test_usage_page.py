"""The usage page (/usage/): a period's usage per channel by day or hour as a chart and a
table, its CSV, the forecast the overview uses, bad parameters, German, and a fixed number
of queries whatever the history."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from metering.models import Channel
from metering.selectors import balances_for_tenant
from metering.services.ingest import usage_record_batch
from tenants.models import Tenant
from tests.conftest import NOW, event
from tests.policies.helpers import set_rule

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_clock")]

BERLIN = ZoneInfo("Europe/Berlin")
# October 2026 in Berlin (the period before NOW's), with its edges and its DST change:
# 02:00-03:00 on the 25th happens twice (02:30 CEST, then 02:30 CET).
OCTOBER = [
    ("o1", "2026-09-30T22:30:00+00:00", 4),  # 1 October, 00:30 CEST: October's first hour
    ("o2", "2026-10-01T10:00:00+00:00", 7),
    ("o3", "2026-10-01T10:40:00+00:00", 2),
    ("o4", "2026-10-14T21:59:00+00:00", 30),  # 14 October, 23:59 CEST
    ("o5", "2026-10-25T00:30:00+00:00", 5),  # 02:30 CEST
    ("o6", "2026-10-25T01:30:00+00:00", 6),  # 02:30 CET, the same hour again
    ("o7", "2026-10-31T22:59:00+00:00", 9),  # 31 October, 23:59 CET
    ("n1", "2026-10-31T23:30:00+00:00", 100),  # 1 November, 00:30 CET: not October's
]


def book(tenant: Tenant, rows: list[tuple[str, str, int]], channel: str = "sms") -> None:
    for event_id, occurred_at, quantity in rows:
        moment = datetime.fromisoformat(occurred_at)
        usage_record_batch(
            tenant=tenant,
            payload={"events": [event(event_id, channel=channel, quantity=quantity,
                                      occurred_at=occurred_at)]},
            now=moment + timedelta(minutes=1),
        )  # fmt: skip


@pytest.fixture
def berlin(people):
    Tenant.objects.filter(pk=people.alpha.pk).update(time_zone="Europe/Berlin")
    people.alpha.refresh_from_db()
    return people


def channel_html(html: str, code: str) -> str:
    start = html.index(f'id="usage-{code}"')
    return html[start : html.index("</article>", start)]


def table(html: str, code: str) -> list[tuple[str, str, str, str]]:
    """(bucket start, label, quantity, running total) of the channel's table."""
    return re.findall(
        r'<tr data-start="([^"]+)"><td>([^<]+)</td><td class="num">([^<]+)</td>'
        r'<td class="num">([^<]+)</td></tr>',
        channel_html(html, code),
    )


def expected(rows: list[tuple[str, str, int]], bucket) -> Counter:
    """The events' units summed by their bucket, October's only."""
    sums: Counter = Counter()
    for _, occurred_at, quantity in rows:
        local = datetime.fromisoformat(occurred_at).astimezone(BERLIN)
        if local.month == 10:
            sums[bucket(datetime.fromisoformat(occurred_at))] += quantity
    return sums


def by_day(moment: datetime) -> str:
    local = moment.astimezone(BERLIN)
    return datetime(local.year, local.month, local.day, tzinfo=BERLIN).isoformat()


def by_hour(moment: datetime) -> str:
    hour = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour.astimezone(BERLIN).isoformat()


def test_the_days_shown_equal_the_events_booked_in_a_past_period(berlin):
    book(berlin.alpha, OCTOBER)
    response = berlin.client(berlin.viewer).get("/usage/?period=1&granularity=day")
    assert response.status_code == 200
    rows = table(response.content.decode(), "sms")
    assert len(rows) == 31
    assert rows[0][:2] == ("2026-10-01T00:00:00+02:00", "1 October 2026")
    assert rows[-1][0] == "2026-10-31T00:00:00+01:00"
    want = expected(OCTOBER, by_day)
    assert {start: int(q) for start, _, q, _ in rows if q != "0"} == dict(want)
    running = 0
    for start, _, quantity, total in rows:
        running += want.get(start, 0)
        assert (int(quantity), int(total)) == (want.get(start, 0), running)
    assert running == 63  # the 1 November event is not October's
    assert "Billing period October 2026" in response.content.decode()


def test_the_hours_shown_equal_the_events_booked_the_dst_hour_twice(berlin):
    book(berlin.alpha, OCTOBER)
    html = berlin.client(berlin.viewer).get("/usage/?period=1&granularity=hour").content.decode()
    rows = table(html, "sms")
    assert {start: int(q) for start, _, q, _ in rows} == dict(expected(OCTOBER, by_hour))
    twice = [(start, label) for start, label, _, _ in rows if start.startswith("2026-10-25T02")]
    assert twice == [
        ("2026-10-25T02:00:00+02:00", "25 October 2026, 02:00 CEST"),
        ("2026-10-25T02:00:00+01:00", "25 October 2026, 02:00 CET"),
    ]
    # every hour of the month is a column of the chart (the 25th has 25)
    assert channel_html(html, "sms").count(" data-tip=") == 31 * 24 + 1


def test_the_current_period_shows_the_included_line_and_the_overviews_forecast(people):
    set_rule(people.alpha, "sms", included_units=2000)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    book(people.alpha, [("a", (start + timedelta(days=2)).isoformat(), 600),
                        ("b", (NOW - timedelta(hours=3)).isoformat(), 400)])  # fmt: skip
    response = people.client(people.viewer).get("/usage/")
    sms = next(c for c in response.context["usage"].channels if c.usage.channel.code == "sms")
    overview = next(
        b for b in balances_for_tenant(tenant=people.alpha).channels if b.channel.code == "sms"
    )
    assert sms.usage.total == overview.used == 1000
    assert sms.projected == overview.forecast_used == round(1000 / (19.5 * 24) * 30 * 24)
    html = channel_html(response.content.decode(), "sms")
    assert 'class="forecast"' in html and 'class="included"' in html
    assert "Included 2,000" in html
    assert "At this rate about 1,538 by the end of the period." in html
    assert '<svg class="usage-chart" viewBox="0 0 720 300" role="img"' in html


def test_the_csv_has_the_pages_figures(berlin):
    set_rule(berlin.alpha, "sms", included_units=500, now=NOW - timedelta(days=60))
    book(berlin.alpha, OCTOBER)
    response = berlin.client(berlin.viewer).get("/usage/export.csv?period=1&granularity=hour")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="usage-alpha-2026-10-hour.csv"' in response["Content-Disposition"]
    body = response.content.decode("utf-8")
    assert body.startswith("channel,bucket_start,quantity,cumulative,included\r\n")
    assert body.endswith("\r\n") and "\n" not in body.replace("\r\n", "")
    rows = list(csv.DictReader(io.StringIO(body)))
    sms = [row for row in rows if row["channel"] == "sms"]
    assert len(sms) == 31 * 24 + 1
    assert {r["bucket_start"]: int(r["quantity"]) for r in sms if r["quantity"] != "0"} == dict(
        expected(OCTOBER, by_hour)
    )
    assert sms[-1]["cumulative"] == "63"
    assert {r["included"] for r in sms} == {"500"}
    channels = {row["channel"] for row in rows}
    assert channels == set(Channel.objects.filter(active=True).values_list("code", flat=True))


def test_another_tenants_usage_is_never_shown(people):
    book(people.beta, [("b1", (NOW - timedelta(hours=2)).isoformat(), 777)])
    client = people.client(people.owner)
    page = client.get("/usage/?granularity=hour")
    assert all(c.usage.total == 0 for c in page.context["usage"].channels)
    assert "777" not in page.content.decode()
    body = client.get("/usage/export.csv").content.decode()
    assert {row["cumulative"] for row in csv.DictReader(io.StringIO(body))} == {"0"}
    beta = people.client(people.beta_owner).get("/usage/export.csv?granularity=hour")
    assert ",777,777," in beta.content.decode()


@pytest.mark.parametrize(
    "query",
    ["period=99", "period=13", "period=-1", "period=abc", "period=1.5", "granularity=week",
     "granularity=", "period=%00&granularity=%F0"],
)  # fmt: skip
def test_bad_parameters_fall_back_on_the_page_and_answer_400_for_the_csv(people, query):
    client = people.client(people.viewer)
    page = client.get(f"/usage/?{query}")
    assert page.status_code == 200
    usage = page.context["usage"]
    if "period" in query:
        assert usage.periods_ago == 0
        assert "That billing period is not available" in page.content.decode()
    if "granularity=w" in query:
        assert usage.granularity == "day"
        assert "Usage can be shown by day or by hour" in page.content.decode()
    export = client.get(f"/usage/export.csv?{query}")
    if query == "granularity=":
        assert export.status_code == 200  # empty: the default
    else:
        assert export.status_code == 400
        assert "period from 0 (this one) to 0 (your account's first)" in export.content.decode()


def test_the_page_in_german(people):
    book(people.beta, [*OCTOBER, ("big", "2026-10-20T12:00:00+00:00", 1815)])
    html = people.client(people.beta_owner).get("/usage/?period=1").content.decode()
    assert "<h1>Nutzung</h1>" in html
    assert "Abrechnungszeitraum Oktober 2026" in html
    rows = table(html, "sms")  # beta's zone is UTC: o1 is September's, n1 October's
    assert rows[0][1:] == ("1. Oktober 2026", "9", "9")
    assert rows[13][1:] == ("14. Oktober 2026", "30", "39")
    assert rows[19][1:] == ("20. Oktober 2026", "1.815", "1.854")
    assert rows[30][1:] == ("31. Oktober 2026", "109", "1.974")
    assert ">6. Okt.</text>" in html
    assert "Nach Tag" in html and "CSV herunterladen" in html


def test_every_member_may_see_it_and_the_menu_lists_it_after_the_overview(people):
    for user in (people.viewer, people.admin, people.owner):
        assert people.client(user).get("/usage/").status_code == 200
    assert people.client(people.staff).get("/usage/").status_code == 403
    from django.test import Client

    anonymous = Client().get("/usage/export.csv")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    html = people.client(people.viewer).get("/dashboard/").content.decode()
    nav = re.findall(r'<li><a href="(/[a-z/]*)"', html)
    assert nav[:3] == ["/dashboard/", "/usage/", "/credits/"]
    assert 'href="/usage/#usage-sms"' in html


def many_channels(count: int) -> list[str]:
    codes = [f"extra_{index}" for index in range(count)]
    Channel.objects.bulk_create([Channel(code=code, name=code.title()) for code in codes])
    return codes


def history(tenant: Tenant, codes: list[str], months: int, every_days: int) -> None:
    """A batch of every channel's usage every ``every_days`` days for ``months`` months."""
    day = timezone.now() - timedelta(days=30.5 * months)
    while day < timezone.now() - timedelta(hours=2):
        usage_record_batch(
            tenant=tenant,
            payload={"events": [event(f"{code}-{day:%Y%m%d}", channel=code, quantity=3,
                                      occurred_at=day.isoformat()) for code in codes]},
            now=day + timedelta(minutes=1),
        )  # fmt: skip
        day += timedelta(days=every_days)


@pytest.mark.parametrize(
    ("months", "every_days", "extra_channels"),
    [(13, 30, 0), (36, 15, 17)],  # a use a month on 3 channels; three years on 20
)
def test_the_page_takes_a_fixed_number_of_queries_whatever_the_history(
    people, months, every_days, extra_channels, django_assert_num_queries
):
    codes = ["sms", "email", "call", *many_channels(extra_channels)]
    history(people.alpha, codes, months, every_days)
    client = people.client(people.viewer)
    for query in ("", "?period=12&granularity=hour", "?period=3"):
        first = client.get(f"/usage/{query}")
        assert len(first.context["usage"].channels) == len(codes)
        assert all(c.usage.total > 0 for c in first.context["usage"].channels)
        # session, user, memberships with their tenants; the account's first period
        # (how far back the selector goes); the chart: the balances with their included
        # credits, the channels, the rollups (two more, the rules and the cohort
        # defaults, for a channel without a balance that period); the unread
        # notifications beside the menu
        with django_assert_num_queries(8):
            assert client.get(f"/usage/{query}").status_code == 200
        with django_assert_num_queries(7):  # no notifications beside a menu
            response = client.get(f"/usage/export.csv{query}")
            assert response.content.count(b"\r\n") > len(codes)
