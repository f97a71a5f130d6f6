"""Evaluation: warnings exactly once, offers, forecasts, overage notices, the sweep."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from metering.models import Balance, Channel
from notifications.models import Delivery, Notification
from policies.models import OverageCharge, TopUpOffer, TopUpPack
from policies.services.evaluate import evaluate_pending, evaluate_sweep
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from tests.conftest import World, event
from tests.factories import TenantFactory
from tests.policies.helpers import balance_of, set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock")


USAGE_KINDS = ["threshold_warning", "limit_reached", "forecast_warning", "overage_fee_notice"]


def kinds(tenant) -> list[tuple[str, int | None]]:
    """The usage messages evaluation sent (not the notice of the test's limit change, nor
    what a message covered)."""
    return sorted(
        (n.kind, n.payload.get("threshold"))
        for n in Notification.objects.filter(tenant=tenant, kind__in=USAGE_KINDS, covered_by="")
    )


def test_crossed_thresholds_notify_once_each(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    world.alice_api.ingest([event("a", channel="sms", quantity=850)])
    result = evaluate_pending()
    assert result.notifications == 1  # the highest threshold crossed; it covers 50 %
    assert kinds(world.alpha) == [("threshold_warning", 80)]
    evaluate_pending()
    evaluate_sweep()
    assert kinds(world.alpha) == [("threshold_warning", 80)]
    world.alice_api.ingest([event("b", channel="sms", quantity=200)])
    evaluate_pending()
    assert kinds(world.alpha) == [("limit_reached", 100), ("threshold_warning", 80)]


def test_warning_payload_carries_the_figures(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    world.alice_api.ingest([event("a", channel="sms", quantity=600)])
    evaluate_pending()
    warning = Notification.objects.get(tenant=world.alpha, kind="threshold_warning", covered_by="")
    assert {
        k: warning.payload[k]
        for k in ("channel", "used", "available", "percent", "threshold", "period")
    } == {
        "channel": "sms",
        "used": 600,
        "available": 1000,
        "percent": 60,
        "threshold": 50,
        "period": "2026-11",
    }


def test_a_warning_at_80_percent_carries_a_top_up_offer(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=500, price=Decimal("29.00")
    )
    world.alice_api.ingest([event("a", channel="sms", quantity=820)])
    evaluate_pending()
    eighty = Notification.objects.get(
        tenant=world.alpha, kind="threshold_warning", payload__threshold=80
    )
    offer = TopUpOffer.objects.get(tenant=world.alpha)
    assert eighty.payload["offer"] == {
        "id": str(offer.public_id),
        "units": 500,
        "price": "29.00",
        "currency": "EUR",
        "expires_at": offer.expires_at.isoformat(),
    }
    assert offer.source == "warning"
    listed = world.alice_api.get("/api/v1/topup-offers").json()["results"]
    assert [o["id"] for o in listed] == [str(offer.public_id)]


def test_forecast_warning_names_the_day_with_known_daily_rate(world: World):
    # 469 hours into November (Berlin: from 31 Oct 23:00 UTC to 20 Nov 12:00 UTC), 975 of
    # 1200 used: 975 × 720 / 469 = 1496.8 → 1497 by the end of the 720-hour month; the
    # 1200 are reached after 1200 × 469 / 975 = 577.2 hours, on 25 November.
    set_rule(world.alpha, "sms", included_units=1200)
    start = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    world.alice_api.ingest(
        [
            event(
                f"d{day}",
                channel="sms",
                quantity=50,
                occurred_at=(start + timedelta(days=day, hours=1)).isoformat(),
            )
            for day in range(19)
        ]
        + [event("half", channel="sms", quantity=25)]
    )
    evaluate_pending()
    forecast = Notification.objects.get(tenant=world.alpha, kind="forecast_warning")
    assert forecast.payload["limit_reached_on"] == "2026-11-25"
    assert forecast.payload["forecast_used"] == 1497


def test_no_forecast_warning_when_the_forecast_stays_under_the_limit(world: World):
    set_rule(world.alpha, "sms", included_units=2000)
    world.alice_api.ingest([event("a", channel="sms", quantity=1000)])  # forecast ~1530
    evaluate_pending()
    assert not Notification.objects.filter(tenant=world.alpha, kind="forecast_warning").exists()


def test_overage_notice_and_charge_are_kept_current(world: World, settings):
    settings.FEE_NOTICE_DAYS = 0  # the schedule prices the usage that follows at once
    sms = Channel.objects.get(code="sms")
    set_rule(world.alpha, "sms", included_units=100, action="charge_overage")
    fee_schedule_notify(
        schedule=fee_schedule_create(channel=sms, name="SMS", tiers=[(None, "0.10")])
    )
    world.alice_api.ingest([event("a", channel="sms", quantity=150)])
    evaluate_pending()
    assert Notification.objects.filter(tenant=world.alpha, kind="overage_fee_notice").count() == 1
    assert OverageCharge.objects.get(tenant=world.alpha).amount == Decimal("5.00")
    world.alice_api.ingest([event("b", channel="sms", quantity=50)])
    evaluate_pending()
    assert OverageCharge.objects.get(tenant=world.alpha).amount == Decimal("10.00")
    assert Notification.objects.filter(tenant=world.alpha, kind="overage_fee_notice").count() == 1


def test_evaluated_balances_are_not_evaluated_again_until_they_move(world: World):
    world.alice_api.ingest([event("a", channel="sms", quantity=5)])
    assert evaluate_pending().balances >= 1
    assert evaluate_pending().balances == 0
    world.alice_api.ingest([event("b", channel="sms", quantity=5)])
    assert evaluate_pending().balances == 1


def test_the_sweep_catches_a_balance_whose_message_was_lost(world: World):
    set_rule(world.alpha, "sms", included_units=100)
    world.alice_api.ingest([event("a", channel="sms", quantity=60)])
    # No worker ever ran the evaluation this ingestion asked for.
    assert evaluate_sweep().notifications == 1
    assert kinds(world.alpha) == [("threshold_warning", 50)]


def test_the_sweep_queries_per_batch_not_per_tenant(db, django_assert_max_num_queries):
    for n in range(30):
        tenant = TenantFactory.create(slug=f"sweep-{n}")
        from metering.services.ingest import usage_record_batch

        usage_record_batch(
            tenant=tenant, payload={"events": [event("x", channel="sms", quantity=1)]}
        )
    evaluate_sweep()
    Balance.objects.update(version=1, evaluated_version=0)
    with django_assert_max_num_queries(12):
        evaluate_sweep()


def test_email_and_webhook_deliveries_are_planned(world: World, settings):
    from notifications.services.webhooks import webhook_endpoint_create

    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    webhook_endpoint_create(tenant=world.alpha, url="http://127.0.0.1:9/hook")
    webhook_endpoint_create(
        tenant=world.alpha, url="http://127.0.0.1:9/other", kinds=["limit_reached"]
    )
    set_rule(world.alpha, "sms", included_units=100)
    world.alice_api.ingest([event("a", channel="sms", quantity=60)])
    evaluate_pending()
    warning = Notification.objects.get(tenant=world.alpha, kind="threshold_warning")
    assert sorted(d.transport for d in Delivery.objects.filter(notification=warning)) == [
        "email",
        "webhook",
    ]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_evaluations_at_once_notify_once_per_threshold(frozen_clock):
    tenant = TenantFactory.create(slug="race")
    set_rule(tenant, "sms", included_units=100)
    from metering.services.ingest import usage_record_batch

    usage_record_batch(tenant=tenant, payload={"events": [event("x", channel="sms", quantity=95)]})
    barrier = threading.Barrier(4)
    errors = []

    def run():
        try:
            barrier.wait()
            evaluate_sweep()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert kinds(tenant) == [("threshold_warning", 90)]
    assert balance_of(tenant).evaluated_version == balance_of(tenant).version
