"""Platform events for billing systems (issue 12): each billable fact is told once to the
platform's webhook endpoints, signed per Standard Webhooks with the event id as
``webhook-id``, with the export's and the line items' figures and ids; at least once
through failures; never to a tenant's endpoints, and a tenant's notifications never to
the platform's; platform endpoints are managed with a platform key only."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import transaction
from django.test import Client

from metering.models import BillingPeriod, Channel
from notifications.models import Delivery, PlatformEvent, WebhookEndpoint
from notifications.services.deliver import deliveries_due, delivery_attempt
from notifications.services.notify import notify
from notifications.services.platform_events import platform_event_emit, platform_event_id
from notifications.services.webhooks import webhook_endpoint_create
from policies.models import OverageCharge, TopUpPack
from policies.services.billing_events import limit_rule_changed_emit
from policies.services.close import periods_close_due
from policies.services.overage import overage_charge_finalize, overage_decide
from policies.services.purchases import topup_pack_buy
from policies.terms import Terms
from tenants.models import Tenant
from tests.billing.test_export import EXPORT, LINE_ITEMS, at, get, november
from tests.conftest import issue
from tests.factories import TenantFactory
from tests.notifications.receiver import Receiver, signature_is_valid
from tests.policies.helpers import set_rule

ENDPOINTS = "/api/v1/webhook-endpoints"
Type = PlatformEvent.Type


@pytest.fixture
def receivers(settings):
    """Two local receivers: the billing system's and a tenant's."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    platform, tenant = Receiver().start(), Receiver().start()
    yield platform, tenant
    platform.stop()
    tenant.stop()


@pytest.fixture
def acme(db) -> Tenant:
    return TenantFactory.create(slug="acme", name="Acme", time_zone="UTC", contact_email="")


def deliver_all() -> list[str]:
    return [delivery_attempt(delivery_id=pk) for pk in deliveries_due()]


def events(event_type: str, period: str | None = None) -> list[PlatformEvent]:
    found = PlatformEvent.objects.filter(type=event_type).order_by("pk")
    if period is not None:
        found = found.filter(payload__period=period)
    return list(found)


def closed_november(tenant: Tenant) -> None:
    """The export's scenario, closed twice (a second run, as a second worker would)."""
    november(tenant)
    with time_machine.travel(at(12, 1, 2), tick=False):
        assert periods_close_due() == 2  # October (opened by the rule) and November
        assert periods_close_due() == 0


def test_period_closed_is_emitted_once_with_the_final_export_rows_figures(acme):
    closed_november(acme)
    assert len(events(Type.PERIOD_CLOSED)) == 2
    (event,) = events(Type.PERIOD_CLOSED, "2026-11")
    period = BillingPeriod.objects.get(tenant=acme, label="2026-11")
    assert event.event_id == platform_event_id(event_type=Type.PERIOD_CLOSED,
                                               fact=f"period:{period.pk}")  # fmt: skip
    data = event.payload
    (row,) = get(issue(None, ["billing:read"]).raw_key, EXPORT, period="2026-11").json()["results"]
    (line,) = data["channels"]
    shared = set(line) & set(row)
    assert len(shared) >= 14  # every figure of the row, by the same name
    assert {name: line[name] for name in shared} == {name: row[name] for name in shared}
    assert line["export_row_id"] == row["id"] and line["topups_in_other_currencies"] == []
    assert (data["tenant_slug"], data["period"], data["currency"]) == ("acme", "2026-11", "EUR")
    assert data["period_start"] == row["period_start"] and row["status"] == "final"
    charge = OverageCharge.objects.get(tenant=acme, period=period)
    assert line["overage_line_item_id"] == f"overage_charge_{charge.pk}"
    assert charge.status == "pending"  # 11.20 is above the auto-bill threshold
    assert data["totals"] == {"overage_fee": "11.20", "billed_amount": "0.00",
                              "waived_amount": "0.00", "pending_amount": "11.20",
                              "topup_amount": "5.00", "topup_count": 1}  # fmt: skip


def test_topups_in_another_currency_are_listed_apart_never_added(acme):
    sms = Channel.objects.get(code="sms")
    eur = TopUpPack.objects.create(channel=sms, units=10, price=Decimal("5.00"))
    usd = TopUpPack.objects.create(channel=sms, units=10, price=Decimal("7.00"), currency="USD")
    with time_machine.travel(at(11, 5), tick=False):
        for pack in (eur, usd):
            topup_pack_buy(tenant=acme, pack_id=pack.pk, purchase_key=uuid.uuid4(), actor=None)
    with time_machine.travel(at(12, 1, 2), tick=False):
        periods_close_due()
    (event,) = events(Type.PERIOD_CLOSED, "2026-11")
    (line,) = event.payload["channels"]
    assert (line["topup_count"], line["topup_amount"]) == (1, "5.00")
    assert line["topups_in_other_currencies"] == [{"currency": "USD", "count": 1, "amount": "7.00"}]
    assert event.payload["totals"]["topup_amount"] == "5.00"


def test_overage_decision_is_emitted_once_as_its_line_item(acme):
    closed_november(acme)
    charge = OverageCharge.objects.get(tenant=acme, period__label="2026-11")
    overage_decide(charge=charge, decision="partly_waive", waived_amount="2.20",
                   reason="goodwill", actor=None, now=at(12, 2))  # fmt: skip
    overage_charge_finalize(charge=charge, now=at(12, 3))  # a second run changes nothing
    (event,) = events(Type.OVERAGE_CHARGE_DECIDED)
    key = issue(None, ["billing:read"]).raw_key
    items = get(key, LINE_ITEMS, period="2026-11").json()["results"]
    (item,) = [item for item in items if item["id"] == event.payload["line_item_id"]]
    figures = {name: value for name, value in item.items() if name != "id"}
    assert {name: event.payload[name] for name in figures} == figures
    assert (event.payload["amount"], event.payload["waived_amount"]) == ("9.00", "2.20")
    assert event.payload["export_row_id"] is not None


def test_an_automatic_decision_at_the_close_is_emitted_before_the_period(acme):
    set_rule(acme, "sms", included_units=10, action="charge_overage", now=at(10, 2))
    from metering.services.ingest import usage_record_batch
    from tests.conftest import event as usage

    usage_record_batch(tenant=acme, payload={"events": [
        usage("a", quantity=20, occurred_at="2026-11-10T00:00:00Z")]}, now=at(11, 10, 1))  # fmt: skip
    with time_machine.travel(at(12, 1, 2), tick=False):
        periods_close_due()
    (decided,) = events(Type.OVERAGE_CHARGE_DECIDED)
    (closed,) = events(Type.PERIOD_CLOSED, "2026-11")
    assert decided.pk < closed.pk
    assert (decided.payload["decision_status"], decided.payload["automatic"]) == ("billed", True)
    assert closed.payload["channels"][0]["decision_status"] == "billed"


def test_topup_purchase_is_emitted_once_whatever_the_double_submit(acme):
    pack = TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=500, price=Decimal("29.00")
    )
    key = uuid.uuid4()
    first = topup_pack_buy(tenant=acme, pack_id=pack.pk, purchase_key=key, actor=None)
    again = topup_pack_buy(tenant=acme, pack_id=pack.pk, purchase_key=key, actor=None)
    assert first.pk == again.pk
    (event,) = events(Type.TOPUP_PURCHASED)
    items = get(issue(acme).raw_key, LINE_ITEMS, period=first.period.label).json()["results"]
    (item,) = items
    assert item["id"] == event.payload["line_item_id"] == f"topup_{key}"
    figures = {name: value for name, value in item.items() if name != "id"}
    assert {name: event.payload[name] for name in figures} == figures
    assert (event.payload["amount"], event.payload["currency"]) == ("29.00", "EUR")
    assert event.payload["source"] == "purchase"


def test_limit_rule_change_is_emitted_once_per_change(acme):
    change = set_rule(acme, "sms", included_units=2000, action="charge_overage")
    (event,) = events(Type.LIMIT_RULE_CHANGED)
    sms = Channel.objects.get(code="sms")
    # The same change told again (a retried call of the emitter) adds nothing.
    limit_rule_changed_emit(tenant=acme, channel=sms, versions=change.versions,
                            before=change.before, worsens=change.worsens, now=at(12, 1))  # fmt: skip
    assert events(Type.LIMIT_RULE_CHANGED) == [event]
    (version,) = event.payload["versions"]
    assert (version["version"], version["included_units"], version["action"]) == (
        change.rule.version, 2000, "charge_overage")  # fmt: skip
    assert event.payload["before"] == Terms.of(change.before).as_fields()
    set_rule(acme, "sms", included_units=3000)  # another change: another event
    assert len(events(Type.LIMIT_RULE_CHANGED)) == 2


def test_a_fact_that_rolls_back_emits_nothing(acme):
    with pytest.raises(RuntimeError), transaction.atomic():
        set_rule(acme, "sms", included_units=2000)
        assert len(events(Type.LIMIT_RULE_CHANGED)) == 1
        raise RuntimeError("the change fails after the event was written")
    assert not PlatformEvent.objects.exists() and not Delivery.objects.exists()


def test_an_event_reaches_platform_endpoints_signed_and_no_tenant_endpoint(acme, receivers):
    platform, tenant = receivers
    endpoint = webhook_endpoint_create(tenant=None, url=platform.url)
    webhook_endpoint_create(tenant=acme, url=tenant.url)
    set_rule(acme, "sms", included_units=2000)
    assert set(deliver_all()) == {"delivered"}
    (received,) = platform.received
    (event,) = events(Type.LIMIT_RULE_CHANGED)
    assert signature_is_valid(endpoint.secret, received)
    assert received.headers["webhook-id"] == event.event_id
    body = json.loads(received.body)
    assert (body["type"], body["data"]["id"]) == ("limit_rule.changed", event.event_id)
    assert body["data"]["versions"] == event.payload["versions"]
    # The tenant's endpoint heard only its own notifications, if any: no platform event.
    assert all(json.loads(r.body)["type"] != "limit_rule.changed" for r in tenant.received)


def test_tenant_notifications_never_reach_platform_endpoints(acme, receivers):
    platform, tenant = receivers
    webhook_endpoint_create(tenant=None, url=platform.url)
    webhook_endpoint_create(tenant=acme, url=tenant.url)
    notify(tenant=acme, kind="limit_changed", dedupe_key="k", payload={"channel": "sms"})
    assert deliver_all() == ["delivered"]
    assert len(tenant.received) == 1 and platform.received == []


def test_a_failed_first_attempt_is_delivered_later_with_the_same_event_id(acme, receivers):
    platform, _ = receivers
    endpoint = webhook_endpoint_create(tenant=None, url=platform.url)
    platform.status = 503
    event = platform_event_emit(event_type=Type.TOPUP_PURCHASED, fact="topup:x",
                                tenant_id=acme.pk, payload={"amount": "1.00"})  # fmt: skip
    assert event is not None
    assert deliver_all() == ["pending"]
    delivery = Delivery.objects.get(event=event)
    assert (delivery.attempts, delivery.last_error) == (1, "HTTP 503")
    platform.status = 200
    assert delivery_attempt(delivery_id=delivery.pk, now=delivery.next_attempt_at) == "delivered"
    first, second = platform.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event.event_id
    assert first.body == second.body
    assert signature_is_valid(endpoint.secret, second)


def test_an_endpoint_gets_only_the_event_types_it_subscribed_to(acme, receivers):
    platform, _ = receivers
    webhook_endpoint_create(tenant=None, url=platform.url, kinds=["topup.purchased"])
    set_rule(acme, "sms", included_units=2000)
    assert not Delivery.objects.exists()
    platform_event_emit(event_type=Type.TOPUP_PURCHASED, fact="topup:y", tenant_id=acme.pk,
                        payload={})  # fmt: skip
    assert deliver_all() == ["delivered"] and len(platform.received) == 1


def api(key: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body) if body is not None else ""
    return Client().generic(method, path, data, content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {key}")  # fmt: skip


def test_platform_endpoints_are_managed_with_a_platform_key_only(acme, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    platform_key = issue(None, ["webhooks:manage"]).raw_key
    tenant_key = issue(acme, ["webhooks:manage"]).raw_key
    created = api(platform_key, "POST", ENDPOINTS,
                  {"url": "http://127.0.0.1:9/billing", "kinds": ["period.closed"]})  # fmt: skip
    assert created.status_code == 201, created.content
    platform_id = created.json()["id"]
    assert created.json()["secret"].startswith("whsec_")
    assert WebhookEndpoint.objects.get(public_id=platform_id).tenant is None
    mine = api(tenant_key, "POST", ENDPOINTS, {"url": "http://127.0.0.1:9/tenant"}).json()["id"]
    # Each lists only its own.
    assert [e["id"] for e in api(tenant_key, "GET", ENDPOINTS).json()["results"]] == [mine]
    assert [e["id"] for e in api(platform_key, "GET", ENDPOINTS).json()["results"]] == [platform_id]
    # Neither deletes the other's: 404, as an unknown one.
    assert api(tenant_key, "DELETE", f"{ENDPOINTS}/{platform_id}").status_code == 404
    assert api(platform_key, "DELETE", f"{ENDPOINTS}/{mine}").status_code == 404
    assert WebhookEndpoint.objects.filter(deleted_at__isnull=True).count() == 2
    # Each family of kinds belongs to its owner.
    refused = api(tenant_key, "POST", ENDPOINTS,
                  {"url": "http://127.0.0.1:9/t", "kinds": ["period.closed"]})  # fmt: skip
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["pointer"].startswith("/kinds")
    refused = api(platform_key, "POST", ENDPOINTS,
                  {"url": "http://127.0.0.1:9/p", "kinds": ["threshold_warning"]})  # fmt: skip
    assert refused.status_code == 400
    assert api(platform_key, "DELETE", f"{ENDPOINTS}/{platform_id}").status_code == 204


def test_a_platform_key_without_the_scope_is_refused(acme):
    key = issue(None, ["billing:read"]).raw_key
    assert api(key, "GET", ENDPOINTS).status_code == 403


def test_platform_endpoints_are_updated_and_rotated_by_the_platform_key_only(acme, receivers):
    platform, _ = receivers
    platform_key = issue(None, ["webhooks:manage"]).raw_key
    tenant_key = issue(acme, ["webhooks:manage"]).raw_key
    endpoint = webhook_endpoint_create(tenant=None, url=platform.url, kinds=["period.closed"])
    theirs = webhook_endpoint_create(tenant=acme, url=platform.url)
    path = f"{ENDPOINTS}/{endpoint.public_id}"
    assert api(tenant_key, "PATCH", path, {"kinds": []}).status_code == 404
    assert api(tenant_key, "POST", f"{path}/rotate-secret").status_code == 404
    assert api(platform_key, "PATCH", f"{ENDPOINTS}/{theirs.public_id}", {}).status_code == 404
    updated = api(platform_key, "PATCH", path, {"kinds": ["topup.purchased"]})
    assert updated.status_code == 200 and updated.json()["kinds"] == ["topup.purchased"]
    assert api(platform_key, "PATCH", path, {"kinds": ["welcome"]}).status_code == 400
    rotated = api(platform_key, "POST", f"{path}/rotate-secret")
    assert rotated.status_code == 200 and rotated.json()["id"] == str(endpoint.public_id)
    secret = rotated.json()["secret"]
    assert secret.startswith("whsec_") and secret != endpoint.secret
    platform_event_emit(event_type=Type.TOPUP_PURCHASED, fact="topup:z", tenant_id=acme.pk,
                        payload={})  # fmt: skip
    assert deliver_all() == ["delivered"]
    (received,) = platform.received
    assert signature_is_valid(secret, received)
    assert not signature_is_valid(endpoint.secret, received)
