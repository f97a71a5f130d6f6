"""POST /api/v1/authorizations and commit / release: decisions, reasons, reservations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from metering.models import Authorization, Channel, LedgerEntry, UsageEvent
from policies.models import Restriction
from policies.services.authorization_settle import authorizations_expire
from policies.services.restrictions import restriction_apply, restriction_lift
from tenants.models import Tenant
from tests.conftest import World, event
from tests.policies.helpers import authorize, balance_of, set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock", "authorization_path")


def test_allow_within_credits_reserves_the_units(world: World):
    set_rule(world.alpha, "sms", included_units=100)
    response = authorize(world.alice_api, "sms", 30)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["decision"], body["reason"], body["remaining"], body["overage_units"]) == (
        "allow",
        None,
        70,
        0,
    )
    assert body["status"] == "held" and body["expires_at"].startswith("2026-11-20T12:10")
    balance = balance_of(world.alpha)
    assert (balance.reserved, balance.used) == (30, 0)
    hold = LedgerEntry.objects.get(kind=LedgerEntry.Kind.HOLD)
    assert hold.reserved_delta == 30 and str(hold.authorization.public_id) == body["id"]


@pytest.mark.parametrize("action", ["notify_only", "charge_overage"])
def test_past_credits_within_hard_limit_is_allow_overage(world: World, action):
    set_rule(world.alpha, "sms", included_units=100, hard_limit=50, action=action)
    assert authorize(world.alice_api, "sms", 90).json()["decision"] == "allow"
    body = authorize(world.alice_api, "sms", 40).json()
    assert (body["decision"], body["reason"], body["overage_units"], body["remaining"]) == (
        "allow_overage",
        "overage",
        30,
        0,
    )


@pytest.mark.parametrize("action", ["notify_only", "charge_overage"])
def test_past_hard_limit_is_denied(world: World, action):
    set_rule(world.alpha, "sms", included_units=100, hard_limit=50, action=action)
    authorize(world.alice_api, "sms", 150)
    body = authorize(world.alice_api, "sms", 1).json()
    assert (body["decision"], body["reason"], body["status"]) == (
        "deny",
        "hard_limit_reached",
        "denied",
    )
    assert balance_of(world.alpha).reserved == 150


def test_hard_limit_zero_allows_nothing_beyond_credits(world: World):
    set_rule(world.alpha, "sms", included_units=10, hard_limit=0)
    assert authorize(world.alice_api, "sms", 10).json()["decision"] == "allow"
    assert authorize(world.alice_api, "sms", 1).json()["reason"] == "hard_limit_reached"


def test_no_hard_limit_means_no_ceiling(world: World):
    set_rule(world.alpha, "sms", included_units=10, hard_limit=None, action="charge_overage")
    assert authorize(world.alice_api, "sms", 100_000).json()["decision"] == "allow_overage"


def test_suspend_action_denies_past_the_credits(world: World):
    set_rule(world.alpha, "sms", included_units=10, action="suspend")
    assert authorize(world.alice_api, "sms", 10).json()["decision"] == "allow"
    body = authorize(world.alice_api, "sms", 1).json()
    assert (body["decision"], body["reason"]) == ("deny", "channel_suspended")


def test_restrict_action_caps_units_past_the_credits_per_window(world: World, frozen_clock):
    set_rule(
        world.alpha,
        "sms",
        included_units=10,
        action="restrict",
        restrict_units=5,
        restrict_window="hour",
    )
    assert authorize(world.alice_api, "sms", 12).json()["decision"] == "allow_overage"  # 2 over
    assert authorize(world.alice_api, "sms", 3).json()["decision"] == "allow_overage"  # 5 over
    body = authorize(world.alice_api, "sms", 1).json()
    assert (body["decision"], body["reason"]) == ("deny", "channel_restricted")
    frozen_clock.shift(timedelta(hours=1))
    assert authorize(world.alice_api, "sms", 5).json()["decision"] == "allow_overage"


def test_inactive_channel_is_denied(world: World):
    body = authorize(world.alice_api, "push", 1).json()
    assert (body["decision"], body["reason"]) == ("deny", "channel_inactive")


def test_unknown_channel_is_400(world: World):
    response = authorize(world.alice_api, "fax", 1)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "channel"


def test_staff_channel_suspension_denies_that_channel_only(world: World):
    restriction_apply(
        tenant=world.alpha,
        channel=Channel.objects.get(code="sms"),
        kind="suspend",
        reason="abuse",
        customer_reason="abuse",
        actor=None,
    )
    assert authorize(world.alice_api, "sms", 1).json()["reason"] == "channel_suspended"
    assert authorize(world.alice_api, "email", 1).json()["decision"] == "allow"
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.RESTRICTED


def test_whole_tenant_suspension_denies_every_channel(world: World):
    restriction_apply(
        tenant=world.alpha,
        channel=None,
        kind="suspend",
        reason="unpaid",
        customer_reason="unpaid",
        actor=None,
    )
    for channel in ("sms", "email", "call"):
        assert authorize(world.alice_api, channel, 1).json()["reason"] == "tenant_suspended"
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.SUSPENDED


def test_closed_tenant_is_denied(world: World):
    Tenant.objects.filter(pk=world.alpha.pk).update(status=Tenant.Status.CLOSED)
    assert authorize(world.alice_api, "sms", 1).json()["reason"] == "tenant_suspended"


def test_staff_throttle_caps_units_per_window(world: World, frozen_clock):
    restriction_apply(
        tenant=world.alpha,
        channel=Channel.objects.get(code="sms"),
        kind="throttle",
        limit_units=10,
        window="day",
        reason="spam wave",
        customer_reason="spam wave",
        actor=None,
    )
    assert authorize(world.alice_api, "sms", 7).json()["decision"] == "allow"
    assert authorize(world.alice_api, "sms", 4).json()["reason"] == "channel_restricted"
    assert authorize(world.alice_api, "sms", 3).json()["decision"] == "allow"
    frozen_clock.shift(timedelta(days=1))
    assert authorize(world.alice_api, "sms", 10).json()["decision"] == "allow"


def test_released_units_return_to_the_window_cap(world: World):
    restriction_apply(
        tenant=world.alpha,
        channel=None,
        kind="throttle",
        limit_units=10,
        window="hour",
        reason="load",
        customer_reason="load",
        actor=None,
    )
    first = authorize(world.alice_api, "email", 10).json()
    assert authorize(world.alice_api, "sms", 1).json()["reason"] == "channel_restricted"
    world.alice_api.post(f"/api/v1/authorizations/{first['id']}/release")
    assert authorize(world.alice_api, "sms", 10).json()["decision"] == "allow"


def test_suspension_with_an_end_lifts_itself(world: World, frozen_clock):
    restriction_apply(
        tenant=world.alpha,
        channel=Channel.objects.get(code="sms"),
        kind="suspend",
        duration=timedelta(hours=2),
        reason="cool-down",
        customer_reason="cool-down",
        actor=None,
    )
    assert authorize(world.alice_api, "sms", 1).json()["reason"] == "channel_suspended"
    frozen_clock.shift(timedelta(hours=2, seconds=1))
    assert authorize(world.alice_api, "sms", 1).json()["decision"] == "allow"


def test_permanent_suspension_stays(world: World, frozen_clock):
    restriction_apply(
        tenant=world.alpha,
        channel=Channel.objects.get(code="sms"),
        kind="suspend",
        reason="fraud",
        customer_reason="fraud",
        actor=None,
    )
    frozen_clock.shift(timedelta(days=400))
    assert authorize(world.alice_api, "sms", 1).json()["reason"] == "channel_suspended"


def test_lifted_suspension_allows_again_and_tenant_status_follows(world: World):
    restriction = restriction_apply(
        tenant=world.alpha,
        channel=None,
        kind="suspend",
        reason="x",
        customer_reason="x",
        actor=None,
    )
    restriction_lift(restriction=restriction, reason="paid", actor=None)
    assert authorize(world.alice_api, "sms", 1).json()["decision"] == "allow"
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.ACTIVE


def test_same_idempotency_key_gives_the_same_answer(world: World):
    first = authorize(world.alice_api, "sms", 5, idempotency_key="send-1").json()
    again = authorize(world.bob_api, "sms", 5, idempotency_key="send-1").json()
    assert first == again
    assert Authorization.objects.count() == 1
    assert balance_of(world.alpha).reserved == 5


@pytest.mark.parametrize(("channel", "quantity"), [("sms", 6), ("email", 5)])
def test_same_idempotency_key_with_another_request_is_409(world: World, channel, quantity):
    authorize(world.alice_api, "sms", 5, idempotency_key="send-1")
    response = authorize(world.alice_api, channel, quantity, idempotency_key="send-1")
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "idempotency_key"
    assert balance_of(world.alpha).reserved == 5


def test_idempotency_keys_are_per_tenant(world: World):
    authorize(world.alice_api, "sms", 5, idempotency_key="k")
    assert authorize(world.gamma_api, "sms", 7, idempotency_key="k").json()["quantity"] == 7


def test_commit_books_usage_and_returns_the_rest(world: World):
    set_rule(world.alpha, "sms", included_units=100)
    held = authorize(world.alice_api, "sms", 30).json()
    response = world.alice_api.post(f"/api/v1/authorizations/{held['id']}/commit", {"quantity": 20})
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["committed_quantity"]) == ("committed", 20)
    balance = balance_of(world.alpha)
    assert (balance.reserved, balance.used, balance.remaining) == (0, 20, 80)
    usage = UsageEvent.objects.get(client_event_id=f"authorization:{held['id']}")
    assert usage.quantity == 20
    series = world.alice_api.get(
        "/api/v1/usage", {"channel": "sms", "to": "2026-11-21T00:00:00Z"}
    ).json()["series"][0]
    assert series["total"] == 20


def test_commit_without_quantity_commits_all_and_is_idempotent(world: World):
    held = authorize(world.alice_api, "sms", 30).json()
    path = f"/api/v1/authorizations/{held['id']}/commit"
    first = world.alice_api.post(path).json()
    assert (
        first
        == world.alice_api.post(path).json()
        == world.alice_api.post(path, {"quantity": 30}).json()
    )
    assert balance_of(world.alpha).used == 30
    assert world.alice_api.post(path, {"quantity": 10}).status_code == 409


@pytest.mark.parametrize("quantity", [0, 31, -1, 2.5, "10"])
def test_commit_bad_quantity_is_400(world: World, quantity):
    held = authorize(world.alice_api, "sms", 30).json()
    response = world.alice_api.post(
        f"/api/v1/authorizations/{held['id']}/commit", {"quantity": quantity}
    )
    assert response.status_code == 400
    assert balance_of(world.alpha).reserved == 30


def test_release_returns_the_units_and_is_idempotent(world: World):
    held = authorize(world.alice_api, "sms", 30).json()
    path = f"/api/v1/authorizations/{held['id']}/release"
    assert world.alice_api.post(path).json()["status"] == "released"
    assert world.alice_api.post(path).json()["status"] == "released"
    assert balance_of(world.alpha).reserved == 0
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.RELEASE).count() == 1
    commit = world.alice_api.post(f"/api/v1/authorizations/{held['id']}/commit")
    assert commit.status_code == 409


def test_release_after_commit_is_409(world: World):
    held = authorize(world.alice_api, "sms", 3).json()
    world.alice_api.post(f"/api/v1/authorizations/{held['id']}/commit")
    assert world.alice_api.post(f"/api/v1/authorizations/{held['id']}/release").status_code == 409


def test_denied_authorization_cannot_be_committed(world: World):
    denied = authorize(world.alice_api, "push", 1).json()
    assert world.alice_api.post(f"/api/v1/authorizations/{denied['id']}/commit").status_code == 409


def test_expired_reservations_return_their_units(world: World, frozen_clock):
    held = authorize(world.alice_api, "sms", 30).json()
    frozen_clock.shift(timedelta(minutes=11))
    assert world.alice_api.post(f"/api/v1/authorizations/{held['id']}/commit").status_code == 409
    assert authorizations_expire() == 1
    assert authorizations_expire() == 0
    assert balance_of(world.alpha).reserved == 0
    assert Authorization.objects.get().status == Authorization.Status.EXPIRED
    assert (
        world.alice_api.post(f"/api/v1/authorizations/{held['id']}/release").json()["status"]
        == "expired"
    )


def test_reservations_count_against_the_credits(world: World):
    set_rule(world.alpha, "sms", included_units=10, hard_limit=0)
    world.alice_api.ingest([event("u", channel="sms", quantity=4)])
    assert authorize(world.alice_api, "sms", 6).json()["decision"] == "allow"
    assert authorize(world.alice_api, "sms", 1).json()["reason"] == "hard_limit_reached"


def test_another_tenants_authorization_is_404(world: World):
    held = authorize(world.alice_api, "sms", 3).json()
    for action in ("commit", "release"):
        response = world.gamma_api.post(f"/api/v1/authorizations/{held['id']}/{action}")
        assert response.status_code == 404
        assert response["Content-Type"] == "application/problem+json"
    assert balance_of(world.alpha).reserved == 3


@pytest.mark.parametrize("authorization_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_unknown_authorization_is_404(world: World, authorization_id):
    assert (
        world.alice_api.post(f"/api/v1/authorizations/{authorization_id}/commit").status_code == 404
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quantity": 1}, "channel"),
        ({"channel": "sms"}, "quantity"),
        ({"channel": "sms", "quantity": 0}, "quantity"),
        ({"channel": "sms", "quantity": 1.5}, "quantity"),
        ({"channel": "sms", "quantity": 1, "colour": "red"}, "colour"),
        ({"channel": "sms", "quantity": 1, "idempotency_key": ""}, "idempotency_key"),
        ({"channel": "sms", "quantity": 10**9}, "quantity"),
    ],
)
def test_bad_authorization_requests_are_400(world: World, body, field):
    response = world.alice_api.post("/api/v1/authorizations", body)
    assert response.status_code == 400, response.content
    assert field in [error["field"] for error in response.json()["errors"]]
    assert Authorization.objects.count() == 0


def test_authorization_needs_usage_write_scope(world: World):
    from tenants.services import api_key_create
    from tests.conftest import Api

    reader = Api(api_key_create(tenant=world.alpha, name="r", scopes=["usage:read"]).raw_key)
    assert authorize(reader, "sms", 1).status_code == 403


def test_balances_report_rule_terms_and_restrictions(world: World):
    set_rule(world.alpha, "sms", included_units=100, hard_limit=20, warning_thresholds=[75, 100])
    world.alice_api.ingest([event("b1", channel="sms", quantity=80)])
    restriction_apply(
        tenant=world.alpha,
        channel=Channel.objects.get(code="call"),
        kind="suspend",
        reason="x",
        customer_reason="x",
        actor=None,
    )
    rows = {r["channel"]: r for r in world.alice_api.get("/api/v1/balances").json()["channels"]}
    assert (
        rows["sms"]["hard_limit"],
        rows["sms"]["thresholds_crossed"],
        rows["sms"]["status"],
    ) == (20, [75], "near_limit")
    assert rows["call"]["status"] == "suspended"
    assert Restriction.objects.count() == 1


def test_a_common_authorization_takes_a_pinned_number_of_queries(world: World, authorization_path):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    set_rule(world.alpha, "sms", included_units=100)
    authorize(world.alice_api, "sms", 1)  # the key's last_used_at is now fresh
    with CaptureQueriesContext(connection) as queries:
        assert authorize(world.alice_api, "sms", 1).json()["decision"] == "allow"
    statements = [
        q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    # fast: the key, then one statement; full: key, channel, period, balance, rule,
    # authorization, hold entry, balance update
    assert len(statements) == (2 if authorization_path == "fast path" else 8), statements


def test_a_hard_limit_denial_takes_a_pinned_number_of_queries(world: World, authorization_path):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    set_rule(world.alpha, "sms", included_units=1, hard_limit=0)
    authorize(world.alice_api, "sms", 1)
    with CaptureQueriesContext(connection) as queries:
        assert authorize(world.alice_api, "sms", 1).json()["reason"] == "hard_limit_reached"
    statements = [
        q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    # fast: the key, then one statement; full: key, the fast statement's lookups are
    # not made, channel, period, balance, rule, authorization
    assert len(statements) == (2 if authorization_path == "fast path" else 6), statements


def test_a_restriction_that_ends_by_itself_is_told_once_and_the_status_follows(
    world: World, frozen_clock
):
    from notifications.models import Notification
    from policies.services.restrictions import restrictions_expire

    restriction_apply(
        tenant=world.alpha,
        channel=Channel.objects.get(code="sms"),
        kind="suspend",
        duration=timedelta(hours=1),
        reason="cool-down",
        customer_reason="cool-down",
        actor=None,
    )
    assert restrictions_expire() == 0
    frozen_clock.shift(timedelta(hours=1, minutes=1))
    assert restrictions_expire() == 1
    assert restrictions_expire() == 0
    world.alpha.refresh_from_db()
    assert world.alpha.status == Tenant.Status.ACTIVE
    assert Notification.objects.filter(tenant=world.alpha, kind="restriction_lifted").count() == 1


def test_commit_reports_the_overage_and_remaining_of_what_it_booked(world: World):
    # Reserved past the credits while another reservation held them; that one is released
    # before the commit, so the committed units fit the credits after all: the commit's
    # answer says so rather than repeating the reservation's figures.
    set_rule(world.alpha, "sms", included_units=100, hard_limit=50)
    first = authorize(world.alice_api, "sms", 90).json()
    second = authorize(world.alice_api, "sms", 40).json()
    assert (second["overage_units"], second["remaining"]) == (30, 0)
    world.alice_api.post(f"/api/v1/authorizations/{first['id']}/release")
    body = world.alice_api.post(
        f"/api/v1/authorizations/{second['id']}/commit", {"quantity": 25}
    ).json()
    assert (body["committed_quantity"], body["overage_units"], body["remaining"]) == (25, 0, 75)
    again = world.alice_api.post(f"/api/v1/authorizations/{second['id']}/commit").json()
    assert again == body


def test_commit_past_the_credits_reports_only_the_units_beyond_them(world: World):
    set_rule(world.alpha, "sms", included_units=100, hard_limit=50)
    held = authorize(world.alice_api, "sms", 120).json()
    assert held["overage_units"] == 20
    body = world.alice_api.post(f"/api/v1/authorizations/{held['id']}/commit", {"quantity": 105})
    assert (body.json()["overage_units"], body.json()["remaining"]) == (5, 0)
    assert balance_of(world.alpha).overage_units == 5
