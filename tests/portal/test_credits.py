"""Credits and purchases (/credits/): packs to buy through topup_pack_buy, purchased
credits with their expiry, the automatic top-up through auto_topup_save, and the history of
top-ups and overage charges."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from creditguard.models import AuditEntry
from metering.models import BillingPeriod, Channel
from policies.models import AutoTopUp, TopUp, TopUpPack
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.overage import (
    overage_charge_finalize,
    overage_charge_refresh,
    overage_decide,
)
from policies.services.purchases import topup_pack_buy
from tests.policies.helpers import balance_of, set_rule
from tests.portal.test_overview import history, ingest

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_clock")]


@pytest.fixture
def pack(db) -> TopUpPack:
    return TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=500, price=Decimal("19.90")
    )


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())).replace(
        "\u00a0", " "
    )


def buy(client, pack, key=None):
    return client.post(f"/credits/packs/{pack.pk}/buy/", {"purchase_key": str(key or uuid.uuid4())})


def test_every_member_sees_the_packs_on_sale(people, pack):
    TopUpPack.objects.create(channel=pack.channel, units=9, price=Decimal("1"), active=False)
    page = people.client(people.viewer).get("/credits/")
    assert page.status_code == 200
    body = text(page)
    assert "500 units for €19.90" in body
    assert "9 units" not in body
    assert f"/credits/packs/{pack.pk}/buy/" not in page.content.decode()
    assert "An admin or owner of your account can buy credits." in body


def test_an_admin_buys_a_pack_and_sees_its_credits_with_their_expiry(people, pack):
    set_rule(people.alpha, "sms", included_units=100)
    response = buy(people.client(people.admin), pack)
    assert response.status_code == 302 and response["Location"] == "/credits/"
    topup = TopUp.objects.get(tenant=people.alpha)
    assert topup.offer.source == "purchase"
    assert balance_of(people.alpha).available == 600
    assert AuditEntry.objects.get(action="topup_offer.create").actor_id == people.admin.pk
    body = text(people.client(people.viewer).get("/credits/"))
    expiry = (timezone.now() + timedelta(days=365)).strftime("%-d %B %Y")
    assert f"SMS 500 500 {expiry}" in body
    assert "Bought 500 €19.90" in body


def test_submitting_the_same_form_twice_buys_once(people, pack):
    client = people.client(people.admin)
    key = uuid.uuid4()
    assert buy(client, pack, key).status_code == 302
    assert buy(client, pack, key).status_code == 302
    assert TopUp.objects.filter(tenant=people.alpha).count() == 1


def test_the_page_gives_each_rendering_a_new_purchase_key(people, pack):
    client = people.client(people.admin)
    keys = {
        re.search(r'name="purchase_key" value="([^"]+)"', client.get("/credits/").content.decode())[
            1
        ]
        for _ in range(2)
    }
    assert len(keys) == 2


def test_a_viewer_cannot_buy(people, pack):
    assert buy(people.client(people.viewer), pack).status_code == 403
    assert not TopUp.objects.exists()


def test_a_pack_not_on_sale_is_404(people, pack):
    pack.active = False
    pack.save()
    assert buy(people.client(people.admin), pack).status_code == 404
    response = people.client(people.admin).post(
        "/credits/packs/999999/buy/", {"purchase_key": str(uuid.uuid4())}
    )
    assert response.status_code == 404


def test_a_malformed_purchase_key_is_an_error_not_a_500(people, pack):
    response = people.client(people.admin).post(
        f"/credits/packs/{pack.pk}/buy/", {"purchase_key": "nope"}, follow=True
    )
    assert response.status_code == 200
    assert "The purchase could not be read" in text(response)
    assert not TopUp.objects.exists()


def test_buying_needs_the_csrf_token(people, pack):
    client = people.client(people.admin, enforce_csrf_checks=True)
    assert buy(client, pack).status_code == 403
    assert not TopUp.objects.exists()


def test_an_admin_turns_the_automatic_top_up_on_and_off(people, pack):
    client = people.client(people.admin)
    form = {"enabled": "on", "threshold_units": "50", "pack": pack.pk, "max_per_period": "2"}
    response = client.post("/credits/auto-topup/sms/", form)
    assert response.status_code == 302
    setting = AutoTopUp.objects.get(tenant=people.alpha)
    assert (setting.enabled, setting.threshold_units, setting.max_per_period) == (True, 50, 2)
    body = text(client.get("/credits/"))
    assert "When 50 or fewer remain, buys 500 units for €19.90 (per period at most: 2)." in body
    client.post("/credits/auto-topup/sms/", {**form, "enabled": ""})
    setting.refresh_from_db()
    assert (setting.enabled, setting.threshold_units) == (False, 50)
    audited = AuditEntry.objects.filter(action__startswith="auto_topup", tenant=people.alpha)
    assert [entry.actor_id for entry in audited] == [people.admin.pk, people.admin.pk]


def test_a_pack_of_another_channel_is_refused_with_a_message(people, pack):
    email_pack = TopUpPack.objects.create(
        channel=Channel.objects.get(code="email"), units=10, price=Decimal("1.00")
    )
    form = {"enabled": "on", "threshold_units": "5", "pack": email_pack.pk, "max_per_period": "1"}
    response = people.client(people.admin).post("/credits/auto-topup/sms/", form, follow=True)
    assert response.status_code == 200
    assert "Choose one of the packs on sale." in text(response)
    assert not AutoTopUp.objects.exists()


@pytest.mark.parametrize(
    "field,value", [("threshold_units", "-1"), ("max_per_period", "0"), ("threshold_units", "x")]
)
def test_bad_settings_are_refused_with_a_message(people, pack, field, value):
    form = {"enabled": "on", "threshold_units": "5", "pack": pack.pk, "max_per_period": "1"}
    response = people.client(people.admin).post(
        "/credits/auto-topup/sms/", {**form, field: value}, follow=True
    )
    assert response.status_code == 200
    assert not AutoTopUp.objects.exists()


def test_a_viewer_cannot_change_the_automatic_top_up(people, pack):
    form = {"enabled": "on", "threshold_units": "5", "pack": pack.pk, "max_per_period": "1"}
    assert people.client(people.viewer).post("/credits/auto-topup/sms/", form).status_code == 403
    assert people.client(people.admin).post("/credits/auto-topup/nope/", form).status_code == 404


def test_another_tenants_history_is_not_shown(people, pack):
    topup_pack_buy(tenant=people.beta, pack_id=pack.pk, purchase_key=uuid.uuid4(), actor=None)
    body = text(people.client(people.both).get("/credits/"))
    assert "No top-ups yet." in body and "No purchased credits to use." in body


def test_overage_charges_show_their_amounts_and_decisions(people, pack, settings):
    settings.FEE_NOTICE_DAYS = 0
    sms = Channel.objects.get(code="sms")
    set_rule(people.alpha, "sms", included_units=100, action="charge_overage")
    schedule = fee_schedule_create(
        channel=sms, name="SMS overage", tiers=[(None, "0.05")],
        effective_from=timezone.now() - timedelta(days=40),
    )  # fmt: skip
    fee_schedule_notify(schedule=schedule, now=timezone.now() - timedelta(days=40))
    ingest(people.alpha, "sms", 150)
    period = BillingPeriod.objects.get(tenant=people.alpha, status="open")
    charge = overage_charge_refresh(tenant=people.alpha, channel=sms, period=period)
    assert charge is not None
    body = text(people.client(people.viewer).get("/credits/"))
    assert "November 2026 SMS 50 €2.50 Period still open: the amount so far" in body
    charge = overage_charge_finalize(charge=charge, announce=False)
    if charge.status == "pending":
        overage_decide(
            charge=charge, decision="partly_waive", waived_amount="1.00", reason="r", actor=None
        )
    charge.refresh_from_db()
    body = text(people.client(people.viewer).get("/credits/"))
    assert "€2.50 Billed:" in body


@pytest.mark.parametrize("months", [0, 2])
def test_the_page_takes_a_fixed_number_of_queries_whatever_the_history(
    people, pack, months, django_assert_num_queries
):
    set_rule(people.alpha, "sms", included_units=100, action="charge_overage")
    history(people.alpha, months)
    for _ in range(months * 3):
        topup_pack_buy(tenant=people.alpha, pack_id=pack.pk, purchase_key=uuid.uuid4(), actor=None)
    ingest(people.alpha, "sms", 150)
    client = people.client(people.owner)
    client.get("/credits/")
    # session, user, memberships with tenants; channels, packs, automatic top-ups,
    # purchased credits, top-ups, overage charges; the unread notifications beside the menu
    with django_assert_num_queries(10):
        assert client.get("/credits/").status_code == 200


def test_in_german_money_is_written_as_german_writes_it(people, pack):
    people.alpha.language = "de"
    people.alpha.save()
    body = text(people.client(people.viewer).get("/credits/"))
    assert "500 Einheiten für 19,90 €" in body
