"""Top-up sums never add two currencies: an export row has one currency, so a row whose
top-ups were priced in another one is refused (409 ``mixed_currencies``), naming it; the
line items, each in its own currency, still list every purchase."""

from __future__ import annotations

from decimal import Decimal

import pytest

from metering.models import Channel
from metering.services.ingest import usage_record_batch
from policies.models import TopUpPack
from policies.services.topups import topup_offer_accept, topup_offer_create
from tenants.models import Tenant
from tests.billing.test_export import EXPORT, LINE_ITEMS, at, get
from tests.conftest import event, issue
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule


def buy(tenant: Tenant, *, price: str, currency: str, day: int) -> None:
    pack = TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=50, price=Decimal(price), currency=currency
    )
    offer = topup_offer_create(tenant=tenant, pack=pack, now=at(11, day))
    topup_offer_accept(tenant=tenant, public_id=offer.public_id, now=at(11, day))


@pytest.fixture
def eur_tenant(db) -> Tenant:
    tenant = TenantFactory.create(slug="euro", time_zone="UTC", currency="EUR")
    set_rule(tenant, "sms", included_units=100, now=at(10, 2))
    usage_record_batch(tenant=tenant, payload={"events": [
        event("a", quantity=10, occurred_at="2026-11-10T00:00:00Z")]}, now=at(11, 10, 1))  # fmt: skip
    return tenant


def test_top_ups_in_the_rows_currency_are_summed(eur_tenant):
    buy(eur_tenant, price="5.00", currency="EUR", day=11)
    buy(eur_tenant, price="7.50", currency="EUR", day=12)
    rows = get(issue(eur_tenant, ["billing:read"]).raw_key, EXPORT, period="2026-11").json()
    (sms,) = [row for row in rows["results"] if row["channel"] == "sms"]
    assert (sms["currency"], sms["topup_count"], sms["topup_amount"]) == ("EUR", 2, "12.50")


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_top_up_in_another_currency_refuses_the_export_naming_the_row(eur_tenant, fmt):
    buy(eur_tenant, price="5.00", currency="EUR", day=11)
    buy(eur_tenant, price="6.00", currency="USD", day=12)
    response = get(issue(None, ["billing:read"]).raw_key, EXPORT, period="2026-11", format=fmt)
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "mixed_currencies"
    assert problem["rows"] == [
        {"tenant": "euro", "channel": "sms", "topup_currency": "USD", "currency": "EUR"}
    ]
    assert "11.00" not in response.content.decode()  # never 5.00 + 6.00


def test_another_tenants_mixed_purchases_do_not_refuse_a_tenants_own_export(eur_tenant):
    buy(eur_tenant, price="6.00", currency="USD", day=12)
    clean = TenantFactory.create(slug="clean", time_zone="UTC", currency="EUR")
    buy(clean, price="5.00", currency="EUR", day=12)
    assert get(issue(clean, ["billing:read"]).raw_key, EXPORT, period="2026-11").status_code == 200


def test_line_items_keep_each_purchase_in_its_own_currency(eur_tenant):
    buy(eur_tenant, price="5.00", currency="EUR", day=11)
    buy(eur_tenant, price="6.00", currency="USD", day=12)
    items = get(issue(None, ["billing:read"]).raw_key, LINE_ITEMS, period="2026-11").json()
    assert [(i["amount"], i["currency"]) for i in items["results"]] == [
        ("5.00", "EUR"),
        ("6.00", "USD"),
    ]
