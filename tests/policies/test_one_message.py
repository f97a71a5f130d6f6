"""One clear message: an evaluation that finds several thresholds crossed sends one
notification, for the highest, saying the current level; what it covers never arrives
later; "limit reached" and "fees may apply" are one message."""

from __future__ import annotations

import copy

import pytest

from metering.models import Balance
from notifications.messages import render_message
from notifications.models import Delivery, Notification
from policies.services.evaluate import balances_evaluate, evaluate_pending, evaluate_sweep
from tests.conftest import World, event
from tests.policies.helpers import balance_of, set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock")


USAGE_KINDS = {"threshold_warning", "limit_reached", "forecast_warning", "overage_fee_notice"}


def listed(api) -> list[dict]:
    """The usage messages the tenant was told of (not the welcome, nor a limit change)."""
    return [
        n for n in api.get("/api/v1/notifications").json()["results"] if n["kind"] in USAGE_KINDS
    ]


def test_several_thresholds_crossed_send_one_message_for_the_highest(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    world.alice_api.ingest([event("a", channel="sms", quantity=880)])
    assert evaluate_pending().notifications == 1
    [message] = listed(world.alice_api)
    assert (message["kind"], message["payload"]["threshold"]) == ("threshold_warning", 80)
    assert "88" in message["message"]["subject"]
    assert "50" not in message["message"]["subject"]
    assert (
        Delivery.objects.filter(
            notification__tenant=world.alpha, notification__kind__in=USAGE_KINDS
        ).count()
        == 1
    )


def test_the_subject_says_the_current_level_in_both_languages(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    world.alice_api.ingest([event("a", channel="sms", quantity=880)])
    evaluate_pending()
    warning = Notification.objects.get(tenant=world.alpha, kind="threshold_warning", covered_by="")
    assert "88\xa0%" in render_message(warning, language="de").subject
    assert "88%" in render_message(warning, language="en").subject


def test_covered_thresholds_never_arrive_later(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    world.alice_api.ingest([event("a", channel="sms", quantity=920)])
    stale = copy.copy(Balance.objects.select_related("tenant", "channel", "period").get(
        tenant=world.alpha, channel__code="sms"
    ))  # fmt: skip
    evaluate_pending()
    # An evaluation that read the balance earlier, at 85 %, finishes after this one.
    stale.used = 850
    balances_evaluate(balances=[stale])
    evaluate_sweep()
    assert [(n["kind"], n["payload"]["threshold"]) for n in listed(world.alice_api)] == [
        ("threshold_warning", 90)
    ]


def test_a_higher_threshold_crossed_later_is_its_own_message(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    world.alice_api.ingest([event("a", channel="sms", quantity=600)])
    evaluate_pending()
    world.alice_api.ingest([event("b", channel="sms", quantity=250)])
    evaluate_pending()
    assert sorted(n["payload"]["threshold"] for n in listed(world.alice_api)) == [50, 80]


@pytest.mark.parametrize("action", ["notify_only", "charge_overage"])
def test_limit_reached_and_fees_may_apply_are_one_message(world: World, action):
    set_rule(world.alpha, "sms", included_units=1000, action=action)
    world.alice_api.ingest([event("a", channel="sms", quantity=1220)])
    evaluate_pending()
    [message] = listed(world.alice_api)
    assert message["kind"] == "limit_reached"
    assert message["payload"]["percent"] == 122
    text = " ".join(message["message"]["lines"])
    assert "122" in text and "charged" in text
    world.alice_api.ingest([event("b", channel="sms", quantity=10)])
    evaluate_pending()
    evaluate_sweep()
    assert len(listed(world.alice_api)) == 1


def test_reaching_the_limit_exactly_then_going_over_sends_no_second_fee_message(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    world.alice_api.ingest([event("a", channel="sms", quantity=1000)])
    evaluate_pending()
    world.alice_api.ingest([event("b", channel="sms", quantity=50)])
    evaluate_pending()
    assert [n["kind"] for n in listed(world.alice_api)] == ["limit_reached"]


def test_a_forecast_with_a_threshold_is_one_message_that_names_the_day(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    world.alice_api.ingest([event("a", channel="sms", quantity=820)])  # forecast ~1250
    evaluate_pending()
    [message] = listed(world.alice_api)
    assert message["kind"] == "threshold_warning"
    assert message["payload"]["limit_reached_on"]
    assert any("at this rate" in line.lower() for line in message["message"]["lines"])
    evaluate_sweep()
    assert len(listed(world.alice_api)) == 1


def test_covered_notifications_are_recorded_but_not_sent(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    world.alice_api.ingest([event("a", channel="sms", quantity=950)])
    evaluate_pending()
    balance = balance_of(world.alpha)
    covered = Notification.objects.filter(tenant=world.alpha).exclude(covered_by="")
    assert sorted(n.dedupe_key for n in covered) == [
        f"forecast:{balance.pk}",
        f"threshold:{balance.pk}:50",
        f"threshold:{balance.pk}:80",
    ]
    assert {n.covered_by for n in covered} == {f"threshold:{balance.pk}:90"}
    assert not Delivery.objects.filter(notification__in=covered).exists()
