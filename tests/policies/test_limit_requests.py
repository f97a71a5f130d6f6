"""Limit adjustment requests: a customer asks, staff approve (a rule version under the
notice rules) or decline with a reason the customer reads; audited, notified, decided once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from creditguard.errors import Conflict, InvalidInput
from creditguard.models import AuditEntry
from metering.models import Channel
from notifications.models import Notification
from policies.models import LimitRequest, LimitRule
from policies.selectors import effective_rule
from policies.services.limit_requests import (
    limit_request_approve,
    limit_request_create,
    limit_request_decline,
)
from tests.conftest import World
from tests.factories import TenantFactory, UserFactory
from tests.policies.helpers import balance_of, set_rule

K = Notification.Kind


def sms() -> Channel:
    return Channel.objects.get(code="sms")


def ask(tenant, units: int = 5000, **extra) -> LimitRequest:
    return limit_request_create(
        tenant=tenant, channel=extra.pop("channel", sms()), included_units=units,
        expected_volume=extra.pop("expected_volume", 4500),
        reason=extra.pop("reason", "Black Friday campaign"), requested_by=None, **extra,
    )  # fmt: skip


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_user("stella", is_staff=True)


@pytest.fixture
def alpha_at_1000(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    return world.alpha


def test_a_request_records_what_was_asked_and_the_credits_in_force(alpha_at_1000):
    person = UserFactory.create()
    request = limit_request_create(
        tenant=alpha_at_1000, channel=sms(), included_units=5000, expected_volume=4500,
        reason="  Black Friday campaign ", requested_by=person,
    )  # fmt: skip
    assert (request.status, request.included_units, request.current_included_units) == (
        "open", 5000, 1000,
    )  # fmt: skip
    assert (request.expected_volume, request.reason, request.requested_by) == (
        4500, "Black Friday campaign", person,
    )  # fmt: skip
    entry = AuditEntry.objects.get(action="limit_request.create")
    assert (entry.actor, entry.tenant, entry.object_id) == (person, alpha_at_1000, str(request.pk))


def test_a_second_open_request_on_a_channel_is_a_conflict(alpha_at_1000):
    ask(alpha_at_1000)
    with pytest.raises(Conflict):
        ask(alpha_at_1000, units=6000)
    assert LimitRequest.objects.filter(tenant=alpha_at_1000).count() == 1
    ask(alpha_at_1000, channel=Channel.objects.get(code="email"))  # another channel: fine


def test_after_a_decision_the_tenant_may_ask_again(alpha_at_1000, staff):
    limit_request_decline(limit_request=ask(alpha_at_1000), customer_reason="No", actor=staff)
    assert ask(alpha_at_1000).status == "open"


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("included_units", {"units": -1}),
        ("included_units", {"units": 1000}),  # what it has already
        ("included_units", {"units": 10**13}),
        ("expected_volume", {"expected_volume": "lots"}),
        ("reason", {"reason": "   "}),
        ("reason", {"reason": "x" * 2001}),
    ],
)
def test_a_bad_request_is_refused_naming_its_field(alpha_at_1000, field, values):
    with pytest.raises(InvalidInput) as refused:
        ask(alpha_at_1000, **values)
    assert refused.value.errors[0]["field"] == field
    assert not LimitRequest.objects.exists()


def test_an_inactive_channel_takes_no_request(alpha_at_1000):
    Channel.objects.filter(code="sms").update(active=False)
    with pytest.raises(InvalidInput):
        ask(alpha_at_1000)


@pytest.mark.usefixtures("frozen_clock")
def test_approving_more_credits_applies_them_at_once(alpha_at_1000, staff):
    notices = Notification.objects.filter(kind=K.LIMIT_CHANGED).count()
    request = limit_request_approve(
        limit_request=ask(alpha_at_1000), reason="Seasonal peak, recommendation agrees",
        customer_reason="Enjoy the campaign", actor=staff,
    )  # fmt: skip
    now = timezone.now()
    assert effective_rule(tenant=alpha_at_1000, channel=sms(), at=now).included_units == 5000
    assert balance_of(alpha_at_1000).available == 5000
    assert (request.status, request.approved_included_units) == ("approved", 5000)
    assert (request.effective_from, request.decided_by, request.decided_at) == (now, staff, now)
    assert request.rule == LimitRule.objects.filter(tenant=alpha_at_1000).latest("version")
    assert "Limit request #" in request.rule.reason
    note = Notification.objects.get(tenant=alpha_at_1000, kind=K.LIMIT_REQUEST_APPROVED)
    assert note.payload["included_units"] == 5000
    assert note.payload["reason"] == "Enjoy the campaign"
    # Better terms need no notice: no limit_changed beside the decision.
    assert Notification.objects.filter(kind=K.LIMIT_CHANGED).count() == notices
    entry = AuditEntry.objects.get(action="limit_request.approve")
    assert (entry.actor, entry.after["status"], entry.after["rule_version"]) == (
        staff, "approved", request.rule.version,
    )  # fmt: skip


@pytest.mark.usefixtures("frozen_clock")
def test_staff_may_approve_another_figure_than_asked(alpha_at_1000, staff):
    request = limit_request_approve(
        limit_request=ask(alpha_at_1000), reason="The recommendation", included_units=3300,
        actor=staff,
    )  # fmt: skip
    assert request.approved_included_units == 3300
    assert effective_rule(
        tenant=alpha_at_1000, channel=sms(), at=timezone.now()
    ).included_units == (3300)


@pytest.mark.usefixtures("frozen_clock")
def test_approving_fewer_credits_waits_for_the_notice_and_a_period_start(alpha_at_1000, staff):
    request = limit_request_approve(
        limit_request=ask(alpha_at_1000, units=400), reason="Asked to lower costs", actor=staff
    )
    now = timezone.now()
    earliest = now + timedelta(days=settings.LIMIT_NOTICE_DAYS)
    assert request.effective_from is not None
    assert request.effective_from >= earliest
    assert request.effective_from.astimezone(alpha_at_1000.tzinfo).day == 1
    assert effective_rule(tenant=alpha_at_1000, channel=sms(), at=now).included_units == 1000
    at = request.effective_from
    assert effective_rule(tenant=alpha_at_1000, channel=sms(), at=at).included_units == 400
    kinds = set(Notification.objects.filter(tenant=alpha_at_1000).values_list("kind", flat=True))
    assert {K.LIMIT_REQUEST_APPROVED, K.LIMIT_CHANGED} <= kinds


def test_declining_keeps_the_terms_and_tells_the_customer_why(alpha_at_1000, staff):
    versions = LimitRule.objects.count()
    request = limit_request_decline(
        limit_request=ask(alpha_at_1000), customer_reason="Your use is far below 1,000.",
        actor=staff,
    )  # fmt: skip
    assert (request.status, request.customer_reason, request.decided_by) == (
        "declined", "Your use is far below 1,000.", staff,
    )  # fmt: skip
    assert LimitRule.objects.count() == versions
    note = Notification.objects.get(tenant=alpha_at_1000, kind=K.LIMIT_REQUEST_DECLINED)
    assert note.payload["reason"] == "Your use is far below 1,000."
    assert AuditEntry.objects.filter(action="limit_request.decline", actor=staff).count() == 1


def test_a_decline_needs_a_reason_for_the_customer(alpha_at_1000, staff):
    request = ask(alpha_at_1000)
    with pytest.raises(InvalidInput):
        limit_request_decline(limit_request=request, customer_reason=" ", actor=staff)
    request.refresh_from_db()
    assert request.status == "open"


def test_an_approval_needs_a_reason(alpha_at_1000, staff):
    with pytest.raises(InvalidInput):
        limit_request_approve(limit_request=ask(alpha_at_1000), reason="", actor=staff)


def test_a_decided_request_is_not_decided_again(alpha_at_1000, staff):
    request = ask(alpha_at_1000)
    limit_request_approve(limit_request=request, reason="ok", actor=staff)
    with pytest.raises(Conflict):
        limit_request_decline(limit_request=request, customer_reason="no", actor=staff)
    with pytest.raises(Conflict):
        limit_request_approve(limit_request=request, reason="again", actor=staff)
    request.refresh_from_db()
    assert request.status == "approved"
    assert Notification.objects.filter(kind__startswith="limit_request_").count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_approvals_and_declines_at_once_decide_a_request_once():
    tenant = TenantFactory.create(time_zone="UTC")
    set_rule(tenant, "sms", included_units=1000)
    request = ask(tenant)
    rules_before = LimitRule.objects.filter(tenant=tenant).count()
    staff = User.objects.create_user("stella-threads", is_staff=True)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def decide(index: int) -> None:
        try:
            barrier.wait()
            if index % 2:
                limit_request_approve(limit_request=request, reason=f"ok {index}", actor=staff)
            else:
                limit_request_decline(limit_request=request, customer_reason="no", actor=staff)
            outcomes.append("decided")
        except Conflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["decided"]
    request.refresh_from_db()
    decided = 1 if request.status == "approved" else 0
    assert LimitRule.objects.filter(tenant=tenant).count() == rules_before + decided
    assert (
        Notification.objects.filter(tenant=tenant, kind__startswith="limit_request_").count() == 1
    )
    assert (
        AuditEntry.objects.filter(action__startswith="limit_request.", tenant=tenant).count() == 2
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_requests_at_once_on_one_channel_record_one():
    tenant = TenantFactory.create(time_zone="UTC")
    set_rule(tenant, "sms", included_units=1000)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def request(index: int) -> None:
        try:
            barrier.wait()
            ask(tenant, units=2000 + index)
            outcomes.append("recorded")
        except Conflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["recorded"]
    assert LimitRequest.objects.filter(tenant=tenant).count() == 1
