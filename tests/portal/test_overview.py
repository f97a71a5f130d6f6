"""The overview (/dashboard/): this period per channel, with the same figures as the
balances API, the offers to accept, the overage so far, restrictions and scheduled terms."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from metering.models import BillingPeriod, Channel
from metering.services.ingest import usage_record_batch
from policies.models import TopUp, TopUpOffer, TopUpPack
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.overage import overage_charge_refresh
from policies.services.restrictions import restriction_apply
from policies.services.rules import limit_rule_set
from policies.services.topups import topup_offer_create
from portal.overview import overview_for
from tenants.services import api_key_create
from tests.conftest import ALL_SCOPES, Api, event
from tests.policies.helpers import set_rule

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_clock")]


def ingest(tenant, channel: str, quantity: int, event_id: str | None = None, when=None):
    usage_record_batch(
        tenant=tenant,
        payload={
            "events": [
                event(
                    event_id or f"{channel}-{quantity}-{timezone.now():%s}",
                    channel=channel,
                    quantity=quantity,
                    occurred_at=(when or timezone.now()).isoformat(),
                )
            ]
        },
        now=(when or timezone.now()) + timedelta(minutes=1),
    )


@pytest.fixture
def pack(db) -> TopUpPack:
    return TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=500, price=Decimal("19.90")
    )


def text(response) -> str:
    """The page's text without tags and with plain spaces."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())).replace(
        "\u00a0", " "
    )


def test_each_channel_shows_the_same_figures_as_the_balances_api(people):
    set_rule(people.alpha, "sms", included_units=2000, hard_limit=250)
    ingest(people.alpha, "sms", 1815)
    ingest(people.alpha, "email", 120)
    api = Api(api_key_create(tenant=people.alpha, name="k", scopes=ALL_SCOPES).raw_key)
    balances = {c["channel"]: c for c in api.get("/api/v1/balances").json()["channels"]}
    page = people.client(people.viewer).get("/dashboard/")
    assert page.status_code == 200
    data = overview_for(tenant=people.alpha)
    for row in data.channels:
        api_row = balances[row.balance.channel.code]
        b = row.balance
        assert (b.used, b.included, b.topped_up, b.remaining, b.hard_limit) == (
            api_row["used"],
            api_row["included"],
            api_row["topped_up"],
            api_row["remaining"],
            api_row["hard_limit"],
        )
        reached = b.forecast_limit_reached_at
        assert (reached.isoformat() if reached else None) == api_row["forecast"]["limit_reached_at"]
    body = text(page)
    assert "SMS" in body, body
    assert "1,815 of 2,000 used (91%)" in body.replace("( ", "(")
    # The ceiling is the credits plus the overage allowed: 2,000 + 250.
    assert "Hard ceiling 2,250" in body
    assert "Near the limit" in body


def test_the_forecast_names_the_day_the_limit_is_reached(people):
    set_rule(people.alpha, "sms", included_units=2000)
    ingest(people.alpha, "sms", 1800)
    body = text(people.client(people.viewer).get("/dashboard/"))
    data = overview_for(tenant=people.alpha)
    reached = next(r for r in data.channels if r.balance.channel.code == "sms")
    day = reached.balance.forecast_limit_reached_at
    assert day is not None
    assert f"At this rate you reach your limit on {day.day} November 2026." in body


def test_what_happens_past_the_limit_is_said_in_words(people):
    set_rule(people.alpha, "sms", included_units=100, action="restrict", restrict_units=50,
             restrict_window="day")  # fmt: skip
    body = text(people.client(people.viewer).get("/dashboard/"))
    assert "Past the limit: Further use is limited to 50 units per day." in body


def test_an_open_offer_is_accepted_by_an_admin(people, pack):
    offer = topup_offer_create(tenant=people.alpha, pack=pack)
    client = people.client(people.admin)
    body = text(client.get("/dashboard/"))
    assert "Offer: 500 more units for €19.90" in body and "Accept the offer" in body
    response = client.post(f"/dashboard/offers/{offer.public_id}/accept/")
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    topup = TopUp.objects.get(offer=offer)
    assert topup.units == 500 and topup.tenant == people.alpha
    after = text(client.get("/dashboard/"))
    assert "Booked: 500 more units for €19.90." in after
    assert "Top-ups 500" in after
    # Accepting again books nothing more.
    client.post(f"/dashboard/offers/{offer.public_id}/accept/")
    assert TopUp.objects.filter(offer=offer).count() == 1


def test_a_viewer_sees_the_offer_but_cannot_accept_it(people, pack):
    offer = topup_offer_create(tenant=people.alpha, pack=pack)
    client = people.client(people.viewer)
    body = text(client.get("/dashboard/"))
    assert "Offer: 500 more units" in body
    assert "Accept the offer" not in body and "An admin or owner" in body
    assert client.post(f"/dashboard/offers/{offer.public_id}/accept/").status_code == 403
    offer.refresh_from_db()
    assert offer.status == TopUpOffer.Status.OPEN


def test_another_tenants_offer_is_not_found(people, pack):
    foreign = topup_offer_create(tenant=people.beta, pack=pack)
    client = people.client(people.owner)
    assert client.post(f"/dashboard/offers/{foreign.public_id}/accept/").status_code == 404
    foreign.refresh_from_db()
    assert foreign.status == TopUpOffer.Status.OPEN
    assert str(foreign.public_id) not in client.get("/dashboard/").content.decode()


def test_overage_so_far_is_shown_with_its_price_by_the_fee_schedule(people, settings):
    settings.FEE_NOTICE_DAYS = 0
    sms = Channel.objects.get(code="sms")
    set_rule(people.alpha, "sms", included_units=100, action="charge_overage")
    schedule = fee_schedule_create(
        channel=sms, name="SMS overage", tiers=[(1000, "0.05"), (None, "0.04")],
        effective_from=timezone.now() - timedelta(days=30),
    )  # fmt: skip
    fee_schedule_notify(schedule=schedule, now=timezone.now() - timedelta(days=20))
    ingest(people.alpha, "sms", 220)
    period = BillingPeriod.objects.get(tenant=people.alpha, status="open")
    charge = overage_charge_refresh(tenant=people.alpha, channel=sms, period=period)
    body = text(people.client(people.viewer).get("/dashboard/"))
    assert charge is not None and charge.amount == Decimal("6.00")
    assert "Overage so far 120 units over the credits" in body
    assert "€6.00 by the fee schedule “SMS overage”" in body
    assert "€0.05 per unit up to 1,000" in body and "€0.04 per unit beyond" in body
    assert "Over the limit" in body


def test_restrictions_in_force_are_shown_with_their_end(people):
    sms = Channel.objects.get(code="sms")
    restriction_apply(
        tenant=people.alpha, channel=sms, kind="throttle", limit_units=10, window="hour",
        reason="spam wave", customer_reason="Unusual volume from your account",
        actor=None, duration=timedelta(hours=2),
    )  # fmt: skip
    people.alpha.refresh_from_db()
    body = text(people.client(people.viewer).get("/dashboard/"))
    assert "Limited to 10 units per hour until 20 November 2026, 14:00 UTC" in body
    assert "Unusual volume from your account" in body and "spam wave" not in body


def test_a_scheduled_change_of_terms_is_announced(people):
    set_rule(people.alpha, "sms", included_units=2000)
    limit_rule_set(
        tenant=people.alpha, channel=Channel.objects.get(code="sms"), included_units=1500,
        reason="new plan", actor=None,
    )  # fmt: skip
    body = text(people.client(people.viewer).get("/dashboard/"))
    assert "Change of terms from 1 January 2027: included 1,500" in body


def test_in_german_figures_are_written_as_german_writes_them(people):
    people.alpha.language = "de"
    people.alpha.save()
    set_rule(people.alpha, "sms", included_units=2000)
    ingest(people.alpha, "sms", 1815)
    body = text(people.client(people.viewer).get("/dashboard/"))
    assert "1.815 von 2.000 genutzt" in body


def history(tenant, months: int) -> None:
    """A day of usage on three channels for each day of ``months`` months, closing each
    period as the worker does (its charges, carried credits, next period)."""
    from policies.services.close import periods_close_due

    start = timezone.now() - timedelta(days=30 * months + 1)
    day = start
    while day < timezone.now() - timedelta(hours=1):
        for code in ("sms", "email", "call"):
            ingest(tenant, code, 40, event_id=f"h-{day:%Y%m%d}-{code}", when=day)
        periods_close_due(now=day + timedelta(hours=2))
        day += timedelta(days=1)


@pytest.mark.parametrize("months", [0, 2, 5])
def test_the_overview_takes_a_fixed_number_of_queries_whatever_the_history(
    people, pack, months, settings, django_assert_num_queries
):
    settings.FEE_NOTICE_DAYS = 0
    sms = Channel.objects.get(code="sms")
    set_rule(people.alpha, "sms", included_units=100, hard_limit=500, action="charge_overage")
    schedule = fee_schedule_create(
        channel=sms, name="SMS overage", tiers=[(1000, "0.05"), (None, "0.04")],
        effective_from=timezone.now() - timedelta(days=400),
    )  # fmt: skip
    fee_schedule_notify(schedule=schedule, now=timezone.now() - timedelta(days=400))
    history(people.alpha, months)
    ingest(people.alpha, "sms", 150)
    period = BillingPeriod.objects.get(tenant=people.alpha, status="open")
    assert overage_charge_refresh(tenant=people.alpha, channel=sms, period=period)
    topup_offer_create(tenant=people.alpha, pack=pack)
    limit_rule_set(tenant=people.alpha, channel=sms, included_units=90, reason="r", actor=None)
    client = people.client(people.owner)
    client.get("/dashboard/")
    # session, user, memberships with tenants; the balances API's reads (period, balances,
    # grant totals, channels, rules in force, whose words the page shows too); open
    # offers, overage charges with their schedule, its tiers, scheduled versions, the
    # upcoming policy; the unread notifications beside the menu
    with django_assert_num_queries(14):
        assert client.get("/dashboard/").status_code == 200
