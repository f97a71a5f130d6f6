"""Worse limit terms only after notice: a worse change is a future version, effective no
earlier than now + LIMIT_NOTICE_DAYS, and the tenant is told each term that changes and
from when; better terms apply at once; an enforcement measure may worsen at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from creditguard.errors import InvalidInput
from creditguard.models import AuditEntry
from metering.models import Balance, Channel
from notifications.models import Notification
from policies.models import LimitRule
from policies.selectors import effective_rule
from policies.services.authorization_settle import authorizations_expire
from policies.services.rules import limit_rule_set
from tests.conftest import NOW, World, event
from tests.policies.helpers import authorize, balance_of, set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock")

NOTICE = NOW + timedelta(days=14)
# alpha keeps Berlin time: its first period start after the notice is 1 January.
JANUARY = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _notice(settings):
    settings.LIMIT_NOTICE_DAYS = 14


def sms() -> Channel:
    return Channel.objects.get(code="sms")


def change(world: World, **terms):
    return limit_rule_set(tenant=world.alpha, channel=sms(), reason="Review", actor=None, **terms)


def terms_at(world: World, at: datetime):
    return effective_rule(tenant=world.alpha, channel=sms(), at=at)


def notice_of(world: World) -> dict:
    notices = Notification.objects.filter(tenant=world.alpha, kind="limit_changed")
    return notices.latest("pk").payload


@pytest.mark.usefixtures("authorization_path")
def test_a_new_hard_ceiling_is_announced_and_does_not_bite_before_its_date(
    world, settings, frozen_clock
):
    settings.LIMIT_NOTICE_DAYS = 7  # keeps the effective date inside this period
    set_rule(world.alpha, "sms", included_units=100)
    world.alice_api.ingest([event("e1", quantity=150)])  # 50 past the credits
    announced = change(world, hard_limit=420)
    assert announced.worsens and announced.worse_from == NOW + timedelta(days=7)
    changes = notice_of(world)["changes"]
    assert changes == [
        {
            "term": "hard_limit",
            "before": None,
            "after": 420,
            "effective_from": (NOW + timedelta(days=7)).isoformat(),
        }
    ]
    frozen_clock.shift(timedelta(minutes=1))
    body = authorize(world.alice_api, "sms", 400).json()  # 450 past the credits
    assert (body["decision"], body["overage_units"]) == ("allow_overage", 400)


@pytest.mark.usefixtures("authorization_path")
def test_the_announced_ceiling_applies_from_its_date(world, settings, frozen_clock):
    settings.LIMIT_NOTICE_DAYS = 7
    set_rule(world.alpha, "sms", included_units=100)
    world.alice_api.ingest([event("e1", quantity=150)])
    change(world, hard_limit=420)
    frozen_clock.shift(timedelta(days=7))
    authorizations_expire()
    body = authorize(world.alice_api, "sms", 400).json()
    assert (body["decision"], body["reason"]) == ("deny", "hard_limit_reached")
    assert authorize(world.alice_api, "sms", 370).json()["decision"] == "allow_overage"


def test_the_notice_names_every_changing_term_before_after_and_from_when(world):
    result = change(
        world,
        included_units=1500,
        hard_limit=1800,
        action="charge_overage",
        warning_thresholds=[60, 90],
    )
    assert notice_of(world)["changes"] == [
        {"term": "warning_thresholds", "before": [50, 80, 90, 100], "after": [60, 90],
         "effective_from": NOW.isoformat()},
        {"term": "hard_limit", "before": None, "after": 1800,
         "effective_from": NOTICE.isoformat()},
        {"term": "action", "before": "notify_only", "after": "charge_overage",
         "effective_from": NOTICE.isoformat()},
        {"term": "included_units", "before": 2000, "after": 1500,
         "effective_from": JANUARY.isoformat()},
    ]  # fmt: skip
    payload = notice_of(world)
    assert payload["effective_from"] == NOTICE.isoformat()
    assert (payload["hard_limit"], payload["before_hard_limit"]) == (1800, None)
    assert (payload["included_units"], payload["before_included_units"]) == (1500, 2000)
    assert [(v.effective_from, v.version) for v in result.versions] == [
        (NOW, 2),
        (NOTICE, 3),
        (JANUARY, 4),
    ]
    # The neutral part applies at once; the rest waits for its date.
    now = terms_at(world, NOW)
    assert (now.warning_thresholds, now.hard_limit, now.action) == ((60, 90), None, "notify_only")
    assert (terms_at(world, NOTICE).hard_limit, terms_at(world, NOTICE).included_units) == (
        1800,
        2000,
    )
    assert terms_at(world, JANUARY).included_units == 1500


def test_better_terms_apply_at_once_and_notify_nothing(world):
    world.alice_api.ingest([event("e1", quantity=10)])
    result = change(world, included_units=2500, action="notify_only")
    assert not result.worsens and result.worse_from is None
    assert [v.effective_from for v in result.versions] == [NOW]
    assert balance_of(world.alpha).available == 2500
    assert not Notification.objects.filter(kind="limit_changed").exists()


def test_fewer_included_credits_wait_for_the_first_period_start_after_the_notice(
    world, frozen_clock
):
    world.alice_api.ingest([event("e1", quantity=10)])
    result = change(world, included_units=1000)
    assert result.included_delta_applied == 0
    assert balance_of(world.alpha).available == 2000  # this period keeps its grant
    assert terms_at(world, NOTICE + timedelta(days=5)).included_units == 2000
    frozen_clock.move_to(JANUARY + timedelta(days=1))
    world.alice_api.ingest([event("e2", quantity=1)])
    january = Balance.objects.get(tenant=world.alpha, channel=sms(), period__label="2027-01")
    assert january.available == 1000


def test_no_notice_days_makes_worse_terms_apply_at_once(world, settings):
    settings.LIMIT_NOTICE_DAYS = 0
    world.alice_api.ingest([event("e1", quantity=10)])
    result = change(world, included_units=1000, hard_limit=5)
    assert result.worse_from == NOW and result.included_delta_applied == -1000
    assert terms_at(world, NOW).hard_limit == 5
    assert notice_of(world)["effective_from"] == NOW.isoformat()


def test_an_effective_date_inside_the_notice_is_refused(world):
    with pytest.raises(InvalidInput) as raised:
        change(world, hard_limit=10, effective_from=NOW + timedelta(days=3))
    assert [e["field"] for e in raised.value.errors] == ["effective_from"]
    assert LimitRule.objects.filter(tenant=world.alpha, channel=sms()).count() == 1


def test_an_effective_date_after_the_notice_is_kept(world):
    later = NOW + timedelta(days=20)
    result = change(world, hard_limit=10, effective_from=later)
    assert result.worse_from == later and terms_at(world, later).hard_limit == 10
    assert terms_at(world, later - timedelta(seconds=1)).hard_limit is None


def test_a_past_effective_date_is_refused(world):
    with pytest.raises(InvalidInput, match="past"):
        change(world, included_units=3000, effective_from=NOW - timedelta(hours=1))


def test_an_enforcement_measure_worsens_at_once_with_a_reason_the_customer_reads(world):
    result = change(
        world,
        action="suspend",
        immediate_as_enforcement=True,
        customer_reason="Messages from this account were reported as spam.",
    )
    assert result.worse_from == NOW and terms_at(world, NOW).action == "suspend"
    payload = notice_of(world)
    assert payload["enforcement"] is True
    assert payload["customer_reason"] == "Messages from this account were reported as spam."
    audit = AuditEntry.objects.filter(action="limit_rule.set").get()
    assert audit.after["immediate_as_enforcement"] is True
    assert audit.after["customer_reason"].startswith("Messages from this account")


def test_an_enforcement_measure_needs_a_customer_reason(world):
    with pytest.raises(InvalidInput) as raised:
        change(world, action="suspend", immediate_as_enforcement=True, customer_reason=" ")
    assert [e["field"] for e in raised.value.errors] == ["customer_reason"]


def test_only_a_restriction_or_suspension_is_an_enforcement_measure(world):
    with pytest.raises(InvalidInput) as raised:
        change(world, hard_limit=0, immediate_as_enforcement=True, customer_reason="abuse")
    assert [e["field"] for e in raised.value.errors] == ["immediate_as_enforcement"]


def test_a_later_better_change_keeps_the_worse_one_announced(world, frozen_clock):
    change(world, hard_limit=420)
    frozen_clock.shift(timedelta(days=1))
    result = change(world, included_units=2500)
    assert [v.effective_from for v in result.versions] == [NOW + timedelta(days=1), NOTICE]
    assert (terms_at(world, NOTICE).hard_limit, terms_at(world, NOTICE).included_units) == (
        420,
        2500,
    )
    assert terms_at(world, NOW + timedelta(days=2)).hard_limit is None


def test_ending_carry_over_is_worse(world):
    set_rule(world.alpha, "sms", carry_over="carry")
    result = change(world, carry_over="forgive")
    assert result.worsens and result.worse_from == NOTICE
    assert terms_at(world, NOW).carry_over == "carry"
    assert terms_at(world, NOTICE).carry_over == "forgive"


def test_scheduled_versions_are_listed_for_the_tenant_page(world):
    from policies.selectors import limit_rules_scheduled

    change(world, hard_limit=420)
    scheduled = limit_rules_scheduled(tenant=world.alpha, at=NOW)
    assert [(r.channel.code, r.effective_from, r.hard_limit) for r in scheduled] == [
        ("sms", NOTICE, 420)
    ]
