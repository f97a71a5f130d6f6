"""The billing export and line items (issue 12): exact figures, recomputed here
independently from the ledger and the events, for a month with grants, a top-up,
carry-over, a partly waived charge and a fee schedule that changes mid-period; who sees
what; CSV streamed; pages; ETag on final periods."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.test import Client

from metering.models import Balance, BillingPeriod, Channel, Grant, LedgerEntry, UsageEvent
from metering.services.ingest import usage_record_batch
from metering.services.ledger import grant_create
from policies.models import OverageCharge, TopUp, TopUpPack
from policies.services.close import periods_close_due
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.overage import overage_charge_refresh, overage_decide
from policies.services.topups import topup_offer_accept, topup_offer_create
from tenants.models import Tenant
from tests.conftest import event, issue
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

EXPORT = "/api/v1/billing/export"
LINE_ITEMS = "/api/v1/billing/line-items"


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def get(key: str, path: str, **params: str):
    return Client().get(path, params, HTTP_AUTHORIZATION=f"Bearer {key}")


def november(tenant: Tenant) -> None:
    """100 SMS included, 20 promotional, 50 bought for 5.00; 400 used (200 on the 10th,
    200 on the 20th); 0.04 a unit until the 15th, 0.10 after; overage carried."""
    sms = Channel.objects.get(code="sms")
    set_rule(tenant, "sms", included_units=100, action="charge_overage", carry_over="carry",
             now=at(10, 2))  # fmt: skip
    old = fee_schedule_create(channel=sms, name="SMS", tiers=[(None, "0.04")], now=at(10, 1))
    fee_schedule_notify(schedule=old, now=at(10, 1))
    new = fee_schedule_create(channel=sms, name="SMS 2", tiers=[(None, "0.10")],
                              effective_from=at(11, 15), now=at(10, 20))  # fmt: skip
    fee_schedule_notify(schedule=new, now=at(10, 20))
    usage_record_batch(tenant=tenant, payload={"events": [
        event("a", quantity=200, occurred_at="2026-11-10T00:00:00Z")]}, now=at(11, 10, 1))  # fmt: skip
    period = BillingPeriod.objects.get(tenant=tenant, label="2026-11")
    grant_create(tenant=tenant, channel=sms, period=period, kind=Grant.Kind.PROMOTIONAL,
                 units=20, reason="welcome", now=at(11, 11))  # fmt: skip
    pack = TopUpPack.objects.create(channel=sms, units=50, price=Decimal("5.00"))
    offer = topup_offer_create(tenant=tenant, pack=pack, now=at(11, 12))
    topup_offer_accept(tenant=tenant, public_id=offer.public_id, now=at(11, 12))
    usage_record_batch(tenant=tenant, payload={"events": [
        event("b", quantity=200, occurred_at="2026-11-20T00:00:00Z")]}, now=at(11, 20, 1))  # fmt: skip


@pytest.fixture
def billed(db) -> Tenant:
    tenant = TenantFactory.create(slug="acme", name='Acme, "Ltd"', time_zone="UTC")
    november(tenant)
    with time_machine.travel(at(12, 1, 2), tick=False):
        periods_close_due()
    charge = OverageCharge.objects.get(tenant=tenant, period__label="2026-11")
    overage_decide(charge=charge, decision="partly_waive", waived_amount="2.20",
                   reason="goodwill", actor=None, now=at(12, 2))  # fmt: skip
    return tenant


def recomputed(tenant: Tenant) -> dict[str, object]:
    """The November row from the ledger and the events alone, with the schedules'
    prices as written above — not from the balance or the charge."""
    entries = LedgerEntry.objects.filter(balance__tenant=tenant, balance__period__label="2026-11")

    def granted(kind: str) -> int:
        return sum(e.available_delta for e in entries.filter(
            kind__in=["grant", "topup", "reduction"], grant__kind=kind))  # fmt: skip

    events = UsageEvent.objects.filter(tenant=tenant, period__label="2026-11").order_by(
        "occurred_at"
    )
    used = sum(e.quantity for e in events)
    credits = sum(e.available_delta for e in entries.exclude(kind="expiry"))
    overage = used - credits
    december = LedgerEntry.objects.filter(
        balance__tenant=tenant, balance__period__label="2026-12", kind="reduction"
    )
    carried = -sum(e.available_delta for e in december)  # fmt: skip
    charged, position, fee = overage - carried, 0, Decimal(0)
    for usage in events:  # price each charged unit by its date: 0.04, from the 15th 0.10
        price = Decimal("0.10") if usage.occurred_at >= at(11, 15) else Decimal("0.04")
        for number in range(position, position + usage.quantity):
            if credits <= number < credits + charged:
                fee += price
        position += usage.quantity
    purchases = TopUp.objects.filter(tenant=tenant)
    return {
        "included_units": granted("included"), "promotional_units": granted("promotional"),
        "topped_up_units": granted("purchased"), "used_units": used, "overage_units": overage,
        "carried_over_units": carried, "overage_fee": f"{fee:.2f}",
        "waived_amount": "2.20", "billed_amount": f"{fee - Decimal('2.20'):.2f}",
        "topup_count": purchases.count(),
        "topup_amount": f"{sum(p.price for p in purchases):.2f}",
    }  # fmt: skip


def test_export_figures_equal_the_ledger_recomputed(billed):
    key = issue(None, ["billing:read"]).raw_key
    response = get(key, EXPORT, period="2026-11")
    assert response.status_code == 200
    (row,) = response.json()["results"]
    expected = recomputed(billed)
    assert {name: row[name] for name in expected} == expected
    assert expected["overage_fee"] == "11.20"  # 30 at 0.04 and 100 at 0.10; 100 carried
    assert (row["status"], row["decision_status"], row["currency"]) == (
        "final", "partly_waived", "EUR")  # fmt: skip
    assert (row["tenant_slug"], row["channel"], row["period"]) == ("acme", "sms", "2026-11")
    assert row["period_start"] == "2026-11-01T00:00:00+00:00"
    assert row["decided_at"] == "2026-12-02T00:00:00+00:00"


def test_an_open_period_is_provisional_with_the_charge_as_kept_current(db):
    tenant = TenantFactory.create(slug="open", time_zone="UTC")
    november(tenant)
    period = BillingPeriod.objects.get(tenant=tenant, label="2026-11")
    charge = overage_charge_refresh(  # as the evaluation keeps it
        tenant=tenant, channel=Channel.objects.get(code="sms"), period=period, now=at(11, 21)
    )
    assert charge is not None and charge.amount > 0
    (row,) = get(issue(tenant).raw_key, EXPORT, period="2026-11").json()["results"]
    assert row["status"] == "provisional"
    assert row["overage_fee"] == str(charge.amount)
    assert (row["billed_amount"], row["decision_status"]) == ("0.00", "pending")


def test_line_items_one_per_purchase_and_decided_charge_with_stable_ids(billed):
    key = issue(None, ["billing:read"]).raw_key
    first = get(key, LINE_ITEMS, period="2026-11").json()
    again = get(key, LINE_ITEMS, period="2026-11").json()
    assert first == again and first["next"] is None
    topup, charge = first["results"]
    offer = TopUp.objects.get(tenant=billed).offer
    assert (topup["id"], topup["kind"], topup["amount"], topup["units"]) == (
        f"topup_{offer.public_id}", "topup", "5.00", 50)  # fmt: skip
    assert (charge["kind"], charge["list_amount"], charge["waived_amount"], charge["amount"]) == (
        "overage_charge", "11.20", "2.20", "9.00")  # fmt: skip
    assert charge["units"] == 130


def test_line_items_page_with_a_cursor(billed):
    key = issue(None, ["billing:read"]).raw_key
    page = get(key, LINE_ITEMS, period="2026-11", page_size="1").json()
    assert [item["kind"] for item in page["results"]] == ["topup"]
    rest = Client().get(page["next"], HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert [item["kind"] for item in rest["results"]] == ["overage_charge"]
    assert rest["next"] is None
    assert get(key, LINE_ITEMS, period="2026-11", cursor="nonsense").status_code == 400


def test_csv_is_streamed_with_a_header_and_rfc4180_quoting(billed):
    key = issue(None, ["billing:read"]).raw_key
    response = get(key, EXPORT, period="2026-11", format="csv")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    assert '"Acme, ""Ltd"""' in text and "\r\n" in text
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert (row["overage_fee"], row["billed_amount"], row["tenant_name"]) == (
        "11.20", "9.00", 'Acme, "Ltd"')  # fmt: skip
    items = get(key, LINE_ITEMS, period="2026-11", format="csv")
    assert len(list(csv.DictReader(io.StringIO(b"".join(items.streaming_content).decode())))) == 2


def test_a_platform_key_sees_every_tenant_and_filters_by_slug(billed):
    other = TenantFactory.create(slug="other", time_zone="UTC")
    november(other)
    with time_machine.travel(at(12, 1, 2), tick=False):
        periods_close_due()
    key = issue(None, ["billing:read"]).raw_key
    rows = get(key, EXPORT, period="2026-11").json()["results"]
    assert {row["tenant_slug"] for row in rows} == {"acme", "other"}
    rows = get(key, EXPORT, period="2026-11", tenant="other").json()["results"]
    assert {row["tenant_slug"] for row in rows} == {"other"}
    assert get(key, EXPORT, period="2026-11", tenant="nobody").status_code == 404


def test_a_tenant_key_sees_only_its_own(billed):
    other = TenantFactory.create(slug="other", time_zone="UTC")
    november(other)
    key = issue(other).raw_key
    rows = get(key, EXPORT, period="2026-11").json()["results"]
    assert {row["tenant_slug"] for row in rows} == {"other"}
    assert get(key, EXPORT, period="2026-11", tenant="acme").status_code == 404
    items = get(key, LINE_ITEMS, period="2026-11").json()["results"]
    assert [item["tenant_slug"] for item in items] == ["other"]  # its top-up, not acme's


def test_the_scope_is_required(billed):
    key = issue(billed, ["usage:read"]).raw_key
    assert get(key, EXPORT, period="2026-11").status_code == 403


@pytest.mark.parametrize(
    "params", [{}, {"period": "2026-13"}, {"period": "2026-11", "format": "xml"}]
)
def test_bad_parameters_are_400(billed, params):
    key = issue(None, ["billing:read"]).raw_key
    response = get(key, EXPORT, **params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_a_final_period_has_an_etag_that_answers_304(billed):
    key = issue(None, ["billing:read"]).raw_key
    response = get(key, EXPORT, period="2026-11")
    etag = response["ETag"]
    again = Client().get(EXPORT, {"period": "2026-11"}, HTTP_AUTHORIZATION=f"Bearer {key}",
                         HTTP_IF_NONE_MATCH=etag)  # fmt: skip
    assert again.status_code == 304


def test_an_open_period_has_no_etag(db):
    tenant = TenantFactory.create(slug="open", time_zone="UTC")
    november(tenant)
    assert "ETag" not in get(issue(tenant).raw_key, EXPORT, period="2026-11")


def test_export_pages_in_a_fixed_number_of_queries(billed, django_assert_max_num_queries):
    for n in range(5):
        tenant = TenantFactory.create(slug=f"t{n}", time_zone="UTC")
        set_rule(tenant, "sms", included_units=10, now=at(10, 2))
        usage_record_batch(tenant=tenant, payload={"events": [
            event(f"e{n}", quantity=3, occurred_at="2026-11-10T00:00:00Z")]}, now=at(11, 10, 1))  # fmt: skip
    key = issue(None, ["billing:read"]).raw_key
    with django_assert_max_num_queries(6):
        rows = get(key, EXPORT, period="2026-11", page_size="2").json()
    assert len(rows["results"]) == 2 and rows["next"]
    seen = [row["id"] for row in rows["results"]]
    url = rows["next"]
    while url:
        page = Client().get(url, HTTP_AUTHORIZATION=f"Bearer {key}").json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert seen == sorted(
        Balance.objects.filter(period__label="2026-11").values_list("pk", flat=True)
    )
