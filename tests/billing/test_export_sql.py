"""The export's statement (billing/sql.py): grants and purchases aggregated once per
balance, joined. It gives exactly the rows of the ORM's statement that SQLite runs, over
the edges: a balance with no grants, two purchases in one row, bought credits carried
into the next period, overage carried over, two time zones, one tenant, a page of ids."""

from __future__ import annotations

from decimal import Decimal
from itertools import chain
from typing import Any

import pytest
import time_machine
from django.test import Client

from billing import sql as billing_sql
from billing.selectors import export_rows, export_rows_orm
from metering.models import Balance, Channel, Grant
from metering.services.ingest import usage_record_batch
from policies.models import OverageCharge, TopUpPack
from policies.services.close import periods_close_due
from policies.services.overage import overage_decide
from policies.services.topups import topup_offer_accept, topup_offer_create
from tenants.models import Tenant
from tests.billing.test_export import EXPORT, at, billed, get, november, recomputed
from tests.conftest import event, issue
from tests.factories import TenantFactory

__all__ = ["billed"]  # the fixture, for the tests here
from tests.policies.helpers import set_rule


def buy(tenant: Tenant, pack: TopUpPack, *, day: int) -> None:
    offer = topup_offer_create(tenant=tenant, pack=pack, now=at(11, day))
    topup_offer_accept(tenant=tenant, public_id=offer.public_id, now=at(11, day))


def use(tenant: Tenant, event_id: str, quantity: int, *, channel: str = "sms") -> None:
    usage_record_batch(tenant=tenant, payload={"events": [
        event(event_id, channel=channel, quantity=quantity, occurred_at="2026-11-14T12:00:00Z")
    ]}, now=at(11, 14, 13))  # fmt: skip


@pytest.fixture
def month(billed) -> dict[str, Tenant]:
    """Besides ``billed`` (acme: grants of every kind, a partly waived charge, overage
    carried into December): keeper buys two packs and uses less than it bought, so what is
    left is carried into December; berlin (another zone) sends e-mail with no credits
    for it, a balance with no grants at all."""
    keeper = TenantFactory.create(slug="keeper", time_zone="UTC")
    set_rule(keeper, "sms", included_units=100, action="charge_overage", now=at(10, 2))
    pack = TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=50, price=Decimal("5.00")
    )
    buy(keeper, pack, day=3)
    buy(keeper, pack, day=4)
    use(keeper, "k", 120)
    berlin = TenantFactory.create(slug="berlin", time_zone="Europe/Berlin")
    set_rule(berlin, "email", included_units=0, now=at(10, 2))
    use(berlin, "b", 7, channel="email")
    with time_machine.travel(at(12, 1, 3), tick=False):
        periods_close_due()
    return {"acme": billed, "keeper": keeper, "berlin": berlin}


def statement_rows(**kwargs: Any) -> list[tuple[Any, ...]]:
    """The statement's rows but their top-ups' currencies, which the ORM's leaves to
    export_currency_check."""
    rows = list(chain.from_iterable(export_rows(**kwargs)))
    assert all(row[-1] in (None, ["EUR"]) for row in rows)
    return [row[:-1] for row in rows]


def orm_rows(**kwargs: Any) -> list[tuple[Any, ...]]:
    return [row[:-1] for row in export_rows_orm(**kwargs)]


@pytest.mark.parametrize("period", ["2026-11", "2026-12"])
def test_the_statement_gives_the_orm_statements_rows(month, period):
    rows = statement_rows(period=period)
    assert len(rows) == Balance.objects.filter(period__label=period).count() >= 3
    assert rows == orm_rows(period=period)
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)
    for tenant in month.values():
        assert statement_rows(period=period, tenant=tenant) == orm_rows(
            period=period, tenant=tenant
        )
    some = [row[0] for row in rows[::2]]
    assert statement_rows(period=period, balance_ids=some) == orm_rows(
        period=period, balance_ids=some
    )


def test_a_balance_with_no_grants_has_zero_credits_not_null(month):
    berlin = month["berlin"]
    assert not Grant.objects.filter(balance__tenant=berlin, balance__channel__code="email")
    rows = get(issue(berlin).raw_key, EXPORT, period="2026-11").json()["results"]
    (email,) = [row for row in rows if row["channel"] == "email"]
    assert (email["included_units"], email["promotional_units"], email["topped_up_units"],
            email["carried_in_units"], email["topup_count"]) == (0, 0, 0, 0, 0)  # fmt: skip
    assert (email["used_units"], email["overage_units"], email["topup_amount"]) == (7, 7, "0.00")
    assert email["period_start"] == "2026-11-01T00:00:00+01:00"


def test_two_purchases_are_one_row_and_what_is_left_is_carried_in(month):
    keeper = month["keeper"]
    key = issue(keeper).raw_key
    (november,) = get(key, EXPORT, period="2026-11").json()["results"]
    assert (november["topup_count"], november["topup_amount"], november["topped_up_units"]) == (
        2, "10.00", 100)  # fmt: skip
    assert (november["included_units"], november["used_units"], november["overage_units"]) == (
        100, 120, 0)  # fmt: skip
    (december,) = get(key, EXPORT, period="2026-12").json()["results"]
    # 100 bought, 20 of them used beyond the 100 included: 80 carried in, bought before.
    assert (december["carried_in_units"], december["topped_up_units"]) == (80, 0)
    assert (december["topup_count"], december["topup_amount"]) == (0, "0.00")


def test_overage_carried_over_reduces_the_next_periods_included_credits(month):
    key = issue(month["acme"]).raw_key
    (november,) = get(key, EXPORT, period="2026-11").json()["results"]
    assert november["carried_over_units"] == 100
    (december,) = get(key, EXPORT, period="2026-12").json()["results"]
    assert december["included_units"] == 100 - 100  # included, less the 100 carried


def test_the_orm_statement_gives_the_ledgers_figures_too(billed, monkeypatch):
    """What SQLite runs: the same figures as recomputed from the ledger."""
    monkeypatch.setattr(billing_sql, "native", lambda: False)
    (row,) = get(issue(None, ["billing:read"]).raw_key, EXPORT, period="2026-11").json()["results"]
    expected = recomputed(billed)
    assert {name: row[name] for name in expected} == expected


def test_a_json_page_is_refused_when_it_holds_a_row_of_mixed_currencies(db):
    """Each page checks its own rows (the statement names each row's top-up currencies):
    the pages before the row answer, the page with it is refused, naming it, as the
    whole CSV is."""
    sms = Channel.objects.get(code="sms")
    tenants = []
    for slug, currency in [("clean", "EUR"), ("mixed", "USD")]:
        tenant = TenantFactory.create(slug=slug, time_zone="UTC", currency="EUR")
        set_rule(tenant, "sms", included_units=100, now=at(10, 2))
        use(tenant, f"{slug}-1", 10)
        pack = TopUpPack.objects.create(
            channel=sms, units=50, price=Decimal("5.00"), currency=currency
        )
        buy(tenant, pack, day=15)
        tenants.append(tenant)
    key = issue(None, ["billing:read"]).raw_key
    first = get(key, EXPORT, period="2026-11", page_size="1")
    assert first.status_code == 200
    assert [row["tenant_slug"] for row in first.json()["results"]] == ["clean"]
    statuses, url = [], first.json()["next"]
    while url:
        response = Client().get(url, HTTP_AUTHORIZATION=f"Bearer {key}")
        statuses.append(response.status_code)
        url = response.json().get("next") if response.status_code == 200 else None
    assert statuses[-1] == 409
    assert response.json()["rows"] == [
        {"tenant": "mixed", "channel": "sms", "topup_currency": "USD", "currency": "EUR"}
    ]
    assert get(key, EXPORT, period="2026-11", format="csv").status_code == 409


def test_a_final_pages_etag_changes_with_a_decision_and_an_open_page_has_none(db):
    tenant = TenantFactory.create(slug="pending", time_zone="UTC")
    november(tenant)
    key = issue(None, ["billing:read"]).raw_key
    assert "ETag" not in get(key, EXPORT, period="2026-11")  # still open: provisional
    with time_machine.travel(at(12, 1, 2), tick=False):
        periods_close_due()
    pending = get(key, EXPORT, period="2026-11")
    assert pending.json()["results"][0]["decision_status"] == "pending"
    again = Client().get(EXPORT, {"period": "2026-11"}, HTTP_AUTHORIZATION=f"Bearer {key}",
                         HTTP_IF_NONE_MATCH=pending["ETag"])  # fmt: skip
    assert again.status_code == 304 and again["ETag"] == pending["ETag"]
    charge = OverageCharge.objects.get(tenant=tenant, period__label="2026-11")
    overage_decide(charge=charge, decision="bill", reason="as agreed", actor=None, now=at(12, 2))
    decided = Client().get(EXPORT, {"period": "2026-11"}, HTTP_AUTHORIZATION=f"Bearer {key}",
                           HTTP_IF_NONE_MATCH=pending["ETag"])  # fmt: skip
    assert decided.status_code == 200 and decided["ETag"] != pending["ETag"]
    assert decided.json()["results"][0]["decision_status"] == "billed"
