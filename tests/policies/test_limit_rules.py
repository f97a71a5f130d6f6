"""Limit rules: versioned, audited, reason required; cohort defaults; set_limit; reductions."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

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
        hard_limit=500,
        reason="Seasonal campaign",
        actor=staff,
    )
    versions = list(LimitRule.objects.filter(tenant=world.alpha, channel=sms()).order_by("version"))
    assert [v.version for v in versions] == [1, 2]
    assert (versions[0].included_units, versions[1].included_units) == (2000, 3000)
    audit = AuditEntry.objects.filter(action="limit_rule.set").get()
    assert (audit.actor, audit.actor_label, audit.reason) == (staff, "sam", "Seasonal campaign")
    assert (audit.before["included_units"], audit.after["included_units"]) == (2000, 3000)
    assert audit.after["hard_limit"] == 500 and audit.tenant == world.alpha
    assert change.worsens  # a ceiling where there was none


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


def test_set_limit_command_goes_through_the_same_service(world: World):
    out = StringIO()
    call_command(
        "set_limit",
        "--tenant",
        "alpha",
        "--channel",
        "sms",
        "--included",
        "900",
        "--hard-limit",
        "100",
        "--action",
        "charge_overage",
        "--thresholds",
        "60,90",
        "--reason",
        "Support ticket 4711",
        stdout=out,
    )
    rule = LimitRule.objects.filter(tenant=world.alpha, channel=sms()).order_by("-version").first()
    assert (
        rule.version,
        rule.included_units,
        rule.hard_limit,
        rule.action,
        rule.warning_thresholds,
    ) == (2, 900, 100, "charge_overage", [60, 90])
    assert "version 2" in out.getvalue()
    # The service has notified the tenant already: the command says so, not "must be".
    assert "worse terms: the tenant has been notified" in out.getvalue()
    assert Notification.objects.filter(tenant=world.alpha, kind="limit_changed").exists()
    assert AuditEntry.objects.filter(action="limit_rule.set", reason="Support ticket 4711").exists()
    assert balance_of(world.alpha).available == 900


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
