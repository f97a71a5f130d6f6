"""The credits page's history shows each top-up in the currency it was bought in and
adds none up: a tenant that bought in two currencies sees both prices as bought."""

from __future__ import annotations

from decimal import Decimal

import pytest

from metering.models import Channel
from policies.models import TopUpPack
from policies.services.topups import topup_offer_accept, topup_offer_create
from tests.portal.test_credits import text

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_clock")]


def test_top_ups_of_two_currencies_show_each_in_its_own(people):
    sms = Channel.objects.get(code="sms")
    for price, currency in (("19.90", "EUR"), ("25.00", "USD")):
        pack = TopUpPack.objects.create(
            channel=sms, units=500, price=Decimal(price), currency=currency
        )
        offer = topup_offer_create(tenant=people.alpha, pack=pack)
        topup_offer_accept(tenant=people.alpha, public_id=offer.public_id)
    body = text(people.client(people.viewer).get("/credits/"))
    assert "€19.90" in body and "$25.00" in body
    assert "44.90" not in body  # never summed across currencies
