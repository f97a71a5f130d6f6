"""Limit rules: versioned, audited, reason required; cohort defaults; set_limit; reductions."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from creditguard.errors import InvalidInput
from creditguard.models import AuditEntry
from metering.models import Channel, Grant, LedgerEntry
from notifications.models import Notification
from policies.models import CohortDefault, LimitRule
from policies.services.rules import credits_reduce, limit_rule_set
from tests.conftest import World, event
from tests.factories import TenantFactory, UserFactory
from tests.policies.helpers import balance_of, set_rule


def sms() -> Channel:
    return Channel.objects.get(code="sms")


def test_new_tenant_gets_version_1_from_its_cohort_default(db):
    CohortDefault.objects.create(
        industry="retail",
        size_band="",
        channel=sms(),
        included_units=4200,
        hard_limit=100,
        action="charge_overage",
    )
    CohortDefault.objects.create(industry="", size_band="", channel=sms(), included_units=1000)
    retail = TenantFactory.create(industry="retail")
    other = TenantFactory.create(industry="finance")
    rule = LimitRule.objects.get(tenant=retail, channel=sms())
    assert (rule.version, rule.included_units, rule.hard_limit, rule.action) == (
        1,
        4200,
        100,
        "charge_overage",
    )
    assert "retail" in rule.reason
    assert LimitRule.objects.get(tenant=other, channel=sms()).included_units == 1000
    # Later changes of a cohort default do not change existing tenants' terms.
    CohortDefault.objects.filter(industry="retail").update(included_units=1)
    assert LimitRule.objects.get(tenant=retail, channel=sms()).included_units == 4200


def test_change_without_reason_is_refused(world: World):
    with pytest.raises(InvalidInput, match="reason"):
        limit_rule_set(tenant=world.alpha, channel=sms(), included_units=5, reason="  ", actor=None)
    assert LimitRule.objects.filter(tenant=world.alpha, channel=sms()).count() == 1


def test_change_writes_a_new_version_and_an_audit_row(world: World):
    staff = UserFactory.create(username="sam", is_staff=True)
    change = limit_rule_set(
        tenant=world.alpha,
        channel=sms(),
        included_units=3000,
        hard_limit=None,
        reason="Seasonal campaign",
        actor=staff,
    )
    versions = list(LimitRule.objects.filter(tenant=world.alpha, channel=sms()).order_by("version"))
    assert [v.version for v in versions] == [1, 2]
    assert (versions[0].included_units, versions[1].included_units) == (2000, 3000)
    audit = AuditEntry.objects.filter(action="limit_rule.set").get()
    assert (audit.actor, audit.actor_label, audit.reason) == (staff, "sam", "Seasonal campaign")
    assert (audit.before["included_units"], audit.after["included_units"]) == (2000, 3000)
    assert audit.after["hard_limit"] is None and audit.tenant == world.alpha
    assert not change.worsens


def test_a_worse_change_is_audited_per_version_with_its_date(world: World, settings):
    settings.LIMIT_NOTICE_DAYS = 14
    change = limit_rule_set(
        tenant=world.alpha, channel=sms(), included_units=3000, hard_limit=500,
        reason="Seasonal campaign", actor=None,
    )  # fmt: skip
    assert change.worsens  # a ceiling where there was none
    audits = list(AuditEntry.objects.filter(action="limit_rule.set").order_by("pk"))
    assert [
        (a.after["version"], a.after["hard_limit"], a.after["worsens_terms"]) for a in audits
    ] == [
        (2, None, False),
        (3, 500, True),
    ]
    assert (
        audits[1].after["effective_from"][:16] == change.versions[1].effective_from.isoformat()[:16]
    )


@pytest.mark.parametrize(
    ("terms", "worse"),
    [
        ({"included_units": 1999}, True),
        ({"included_units": 2001}, False),
        ({"hard_limit": 10}, True),  # from no ceiling to one
        ({"action": "suspend"}, True),
        ({"action": "notify_only"}, False),
        ({"warning_thresholds": [80, 100]}, False),
    ],
)
def test_change_tells_whether_it_worsens_the_terms(world: World, terms, worse):
    assert set_rule(world.alpha, "sms", **terms).worsens is worse


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"included_units": -1}, "included_units"),
        ({"hard_limit": -5}, "hard_limit"),
        ({"warning_thresholds": [90, 50]}, "warning_thresholds"),
        ({"warning_thresholds": []}, "warning_thresholds"),
        ({"action": "explode"}, "action"),
        ({"action": "restrict"}, "restrict_units"),
        ({"action": "restrict", "restrict_units": 5, "restrict_window": "week"}, "restrict_window"),
    ],
)
def test_invalid_terms_are_refused_naming_the_field(world: World, terms, field):
    with pytest.raises(InvalidInput) as raised:
        set_rule(world.alpha, "sms", **terms)
    assert field in [e["field"] for e in raised.value.errors]


def test_raising_included_credits_grants_the_difference_now(world: World):
    world.alice_api.ingest([event("e", channel="sms", quantity=10)])
    set_rule(world.alpha, "sms", included_units=2500)
    balance = balance_of(world.alpha)
    assert balance.available == 2500
    assert Grant.objects.filter(balance=balance, kind="included").count() == 2


def test_lowering_included_credits_reduces_only_unused_credits(world: World):
    world.alice_api.ingest([event("e", channel="sms", quantity=1500)])
    change = set_rule(world.alpha, "sms", included_units=1000)
    balance = balance_of(world.alpha)
    assert change.included_delta_applied == -500  # 500 were still unused
    assert (balance.available, balance.used) == (1500, 1500)
    assert LedgerEntry.objects.filter(balance=balance, kind="reduction").count() == 1


def test_future_dated_rule_applies_from_its_date(world: World):
    from datetime import timedelta

    from django.utils import timezone

    from policies.selectors import effective_rule

    later = timezone.now() + timedelta(days=3)
    set_rule(world.alpha, "sms", hard_limit=5, effective_from=later)
    assert effective_rule(tenant=world.alpha, channel=sms(), at=timezone.now()).hard_limit is None
    assert effective_rule(tenant=world.alpha, channel=sms(), at=later).hard_limit == 5


def test_reduce_credits_is_audited_and_refuses_more_than_unused(world: World):
    world.alice_api.ingest([event("e", channel="sms", quantity=1900)])
    with pytest.raises(InvalidInput, match="100 unused"):
        credits_reduce(tenant=world.alpha, channel=sms(), units=101, reason="abuse", actor=None)
    assert (
        credits_reduce(tenant=world.alpha, channel=sms(), units=60, reason="abuse", actor=None)
        == 60
    )
    assert balance_of(world.alpha).available == 1940
    assert AuditEntry.objects.filter(action="credits.reduce").get().after["reduced"] == 60


def test_a_reduction_is_told_to_the_tenant_with_the_reason_written_for_it(world: World):
    world.alice_api.ingest([event("e", channel="sms", quantity=1500)])
    credits_reduce(
        tenant=world.alpha, channel=sms(), units=300, reason="fraud suspicion, ticket 88",
        customer_reason="Unusual traffic from your account.", actor=None,
    )  # fmt: skip
    note = Notification.objects.get(tenant=world.alpha, kind="credits_reduced")
    assert (note.payload["reduced_units"], note.payload["available_before"]) == (300, 2000)
    assert (note.payload["available"], note.payload["reason"]) == (
        1700,
        "Unusual traffic from your account.",
    )
    assert "fraud" not in str(note.payload)


def test_set_limit_command_goes_through_the_same_service(world: World, settings):
    settings.LIMIT_NOTICE_DAYS = 14
    out = StringIO()
    call_command(
        "set_limit", "--tenant", "alpha", "--channel", "sms", "--included", "900",
        "--hard-limit", "100", "--action", "charge_overage", "--thresholds", "60,90",
        "--reason", "Support ticket 4711", stdout=out,
    )  # fmt: skip
    rules = LimitRule.objects.filter(tenant=world.alpha, channel=sms()).order_by("version")
    assert [
        (r.version, r.included_units, r.hard_limit, r.action, r.warning_thresholds) for r in rules
    ] == [
        (1, 2000, None, "notify_only", [50, 80, 90, 100]),
        (2, 2000, None, "notify_only", [60, 90]),  # the thresholds at once
        (3, 2000, 100, "charge_overage", [60, 90]),  # the worse terms after the notice
        (4, 900, 100, "charge_overage", [60, 90]),  # fewer credits from the next period
    ]
    text = out.getvalue()
    assert "version 2 from 2026-" in text and "version 4 from 2027-01-01 00:00 CET" in text
    # The service has notified the tenant already: the command says so, not "must be".
    assert "Worse terms: the tenant has been notified" in text
    assert Notification.objects.filter(tenant=world.alpha, kind="limit_changed").exists()
    assert AuditEntry.objects.filter(action="limit_rule.set", reason="Support ticket 4711").exists()


def test_set_limit_takes_an_effective_date_and_carry_over(world: World, settings):
    settings.LIMIT_NOTICE_DAYS = 14
    call_command(
        "set_limit", "--tenant", "alpha", "--channel", "sms", "--carry-over", "carry",
        "--hard-limit", "50", "--effective-from", "2027-02-01", "--reason", "Renewal",
        stdout=StringIO(),
    )  # fmt: skip
    rule = LimitRule.objects.filter(tenant=world.alpha, channel=sms()).latest("version")
    assert (rule.carry_over, rule.hard_limit) == ("carry", 50)
    assert rule.effective_from.isoformat() == "2027-01-31T23:00:00+00:00"  # Berlin midnight


def test_set_limit_refuses_worse_terms_inside_the_notice(world: World, settings):
    settings.LIMIT_NOTICE_DAYS = 14
    soon = (timezone.now() + timedelta(days=3)).isoformat()
    with pytest.raises(CommandError, match="no earlier than"):
        call_command(
            "set_limit", "--tenant", "alpha", "--channel", "sms", "--hard-limit", "5",
            "--effective-from", soon, "--reason", "x", stdout=StringIO(),
        )  # fmt: skip


def test_set_limit_makes_an_enforcement_measure_immediate(world: World, settings):
    settings.LIMIT_NOTICE_DAYS = 14
    call_command(
        "set_limit", "--tenant", "alpha", "--channel", "sms", "--action", "suspend",
        "--immediate-as-enforcement", "--customer-reason", "Reported as spam.",
        "--reason", "Abuse desk case 12", stdout=StringIO(),
    )  # fmt: skip
    rule = LimitRule.objects.filter(tenant=world.alpha, channel=sms()).latest("version")
    assert (rule.version, rule.action) == (2, "suspend")
    notice = Notification.objects.get(tenant=world.alpha, kind="limit_changed")
    assert notice.payload["customer_reason"] == "Reported as spam."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--tenant", "nobody", "--channel", "sms", "--included", "5", "--reason", "x"],
            "No tenant",
        ),
        (
            ["--tenant", "alpha", "--channel", "fax", "--included", "5", "--reason", "x"],
            "No channel",
        ),
        (["--tenant", "alpha", "--channel", "sms", "--included", "5", "--reason", " "], "reason"),
        (["--tenant", "alpha", "--channel", "sms", "--reason", "x"], "at least one term"),
        (
            [
                "--tenant",
                "alpha",
                "--channel",
                "sms",
                "--included",
                "5",
                "--reason",
                "x",
                "--effective-from",
                "soon",
            ],
            "effective-from",
        ),
        (
            ["--tenant", "alpha", "--channel", "sms", "--included", "-5", "--reason", "x"],
            "included_units",
        ),
        (
            [
                "--tenant",
                "alpha",
                "--channel",
                "sms",
                "--included",
                "5",
                "--hard-limit",
                "lots",
                "--reason",
                "x",
            ],
            "hard-limit",
        ),
        (
            [
                "--tenant",
                "alpha",
                "--channel",
                "sms",
                "--included",
                "5",
                "--thresholds",
                "a,b",
                "--reason",
                "x",
            ],
            "thresholds",
        ),
    ],
)
def test_set_limit_refuses_bad_input(world: World, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("set_limit", *args, stdout=StringIO())
    assert LimitRule.objects.filter(tenant=world.alpha, channel=sms()).count() == 1
