"""How full a balance is: one ``usage_level`` and one "near a limit" for every reader."""

from __future__ import annotations

import math

import pytest

from notifications.models import Notification
from policies.services.evaluate import evaluate_pending
from tests.conftest import World, event
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock")


def test_usage_level_is_the_percent_of_the_available_credits_used():
    from metering.levels import usage_level

    assert usage_level(used=850, available=1000) == 85.0
    assert usage_level(used=1500, available=1000) == 150.0
    assert usage_level(used=0, available=0) == 0.0
    assert usage_level(used=1, available=0) == math.inf


def test_usage_percent_rounds_for_display_and_has_no_figure_of_nothing():
    from metering.levels import usage_percent

    assert usage_percent(used=2, available=3) == 67
    assert usage_percent(used=0, available=0) is None
    assert usage_percent(used=5, available=0) is None


def test_near_a_limit_is_80_percent_for_the_balances_status(world: World):
    from metering.levels import NEAR_LIMIT_PERCENT

    assert NEAR_LIMIT_PERCENT == 80
    set_rule(world.alpha, "sms", included_units=1000)
    world.alice_api.ingest([event("a", channel="sms", quantity=799)])
    sms = {r["channel"]: r for r in world.alice_api.get("/api/v1/balances").json()["channels"]}
    assert sms["sms"]["status"] == "ok"
    world.alice_api.ingest([event("b", channel="sms", quantity=1)])
    sms = {r["channel"]: r for r in world.alice_api.get("/api/v1/balances").json()["channels"]}
    assert sms["sms"]["status"] == "near_limit"


def test_balances_and_warnings_agree_on_the_thresholds_crossed_with_nothing_included(
    world: World,
):
    """Usage with no credits at all is past every threshold, for the balances API as for
    the warnings sent (the API used to stop at 100 × (used + 1) %)."""
    set_rule(world.alpha, "sms", included_units=0, warning_thresholds=[100, 1000])
    world.alice_api.ingest([event("a", channel="sms", quantity=5)])
    evaluate_pending()
    warned = sorted(
        n.payload["threshold"]
        for n in Notification.objects.filter(
            tenant=world.alpha, kind__in=["threshold_warning", "limit_reached"]
        )
    )
    rows = {r["channel"]: r for r in world.alice_api.get("/api/v1/balances").json()["channels"]}
    assert warned == [100, 1000]
    assert rows["sms"]["thresholds_crossed"] == warned
