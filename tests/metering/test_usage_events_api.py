"""POST /api/v1/usage-events: recording, duplicates, conflicts and every bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from metering.models import Balance, BillingPeriod, LedgerEntry, UsageEvent
from metering.services.periods import period_bounds, period_get_or_open, period_mark_closed
from tests.conftest import NOW, World, event

PATH = "/api/v1/usage-events"
pytestmark = pytest.mark.usefixtures("frozen_clock")


def assert_nothing_recorded() -> None:
    assert UsageEvent.objects.count() == 0
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.USAGE).count() == 0


def test_batch_is_recorded_and_booked_on_balances(world: World):
    response = world.alice_api.ingest(
        [
            event("a-1", channel="sms", quantity=3),
            event("a-2", channel="sms", quantity=4),
            event("a-3", channel="email", quantity=10, metadata={"campaign": "x"}),
        ]
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 3, "duplicates": 0}
    used = {
        b.channel.code: b.used
        for b in Balance.objects.for_tenant(world.alpha).select_related("channel")
    }
    assert used == {"sms": 7, "email": 10}


def test_duplicate_event_is_not_counted_twice(world: World):
    batch = [event("d-1", quantity=5, occurred_at="2026-11-20T10:00:00Z")]
    assert world.alice_api.ingest(batch).json() == {"accepted": 1, "duplicates": 0}
    # The same instant written with another offset is the same content.
    again = [event("d-1", quantity=5, occurred_at="2026-11-20T11:00:00+01:00")]
    assert world.bob_api.ingest(again).json() == {"accepted": 0, "duplicates": 1}
    assert UsageEvent.objects.count() == 1
    assert Balance.objects.get(tenant=world.alpha).used == 5


def test_duplicate_inside_one_batch_counts_once(world: World):
    response = world.alice_api.ingest([event("x", quantity=2), event("x", quantity=2)])
    assert response.json() == {"accepted": 1, "duplicates": 1}
    assert Balance.objects.get(tenant=world.alpha).used == 2


def test_same_id_other_content_is_409_naming_ids_and_records_nothing_of_batch(world: World):
    world.alice_api.ingest([event("c-1", quantity=5)])
    response = world.alice_api.ingest([event("c-new", quantity=1), event("c-1", quantity=6)])
    assert response.status_code == 409
    body = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert body["conflicting_ids"] == ["c-1"]
    assert "c-1" in body["detail"]
    assert not UsageEvent.objects.filter(client_event_id="c-new").exists()
    assert Balance.objects.get(tenant=world.alpha).used == 5


def test_same_id_other_content_within_batch_is_409(world: World):
    response = world.alice_api.ingest([event("w", quantity=1), event("w", quantity=2)])
    assert response.status_code == 409
    assert response.json()["conflicting_ids"] == ["w"]
    assert_nothing_recorded()


def test_event_ids_are_per_tenant(world: World):
    assert world.alice_api.ingest([event("shared-id", quantity=1)]).json()["accepted"] == 1
    assert world.gamma_api.ingest([event("shared-id", quantity=9)]).json()["accepted"] == 1


def test_usage_past_included_credits_is_still_recorded(world: World):
    response = world.alice_api.ingest([event("big", channel="call", quantity=600)])  # 500 included
    assert response.status_code == 200
    balance = Balance.objects.get(tenant=world.alpha)
    assert (balance.used, balance.available, balance.overage_units) == (600, 500, 100)


def test_late_event_inside_grace_window_is_accepted(world: World):
    end = period_bounds(tenant=world.alpha, at=timezone.now()).ends_at
    with time_machine.travel(end + timedelta(minutes=30), tick=False):
        response = world.alice_api.ingest(
            [event("late", occurred_at=(end - timedelta(minutes=5)).isoformat())]
        )
    assert response.status_code == 200
    assert response.json()["accepted"] == 1


def test_event_after_grace_window_is_refused_as_closed_period(world: World):
    end = period_bounds(tenant=world.alpha, at=timezone.now()).ends_at
    with time_machine.travel(end + timedelta(minutes=61), tick=False):
        response = world.alice_api.ingest(
            [event("too-late", occurred_at=(end - timedelta(minutes=5)).isoformat())]
        )
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/events/0/occurred_at"
    assert "closed" in response.json()["errors"][0]["detail"]
    assert_nothing_recorded()


def test_event_of_a_closed_period_row_is_refused(world: World):
    now = timezone.now()
    previous = period_bounds(tenant=world.alpha, at=now - timedelta(days=40))
    period = period_get_or_open(tenant=world.alpha, bounds=previous)
    assert period_mark_closed(period=period, now=now)
    response = world.alice_api.ingest(
        [event("old", occurred_at=(previous.ends_at - timedelta(hours=1)).isoformat())]
    )
    assert response.status_code == 422
    assert period.status == BillingPeriod.Status.CLOSED


def ev(**overrides: Any) -> dict[str, Any]:
    base = {"id": "e-1", "channel": "sms", "quantity": 1, "occurred_at": NOW.isoformat()}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not MISSING}


MISSING = object()

# name, body (or raw text), content type, status, pointer the problem names
BAD_INPUT: list[tuple[str, Any, str, int, str | None]] = [
    ("not json", "{not json", "application/json", 400, None),
    ("empty body", "", "application/json", 400, None),
    ("wrong content type", '{"events": []}', "text/plain", 415, None),
    ("form content type", "events=1", "application/x-www-form-urlencoded", 415, None),
    ("body is a list", [], "application/json", 400, "/"),
    ("events missing", {}, "application/json", 400, "/events"),
    (
        "extra top-level field",
        {"events": [ev()], "tenant": "beta"},
        "application/json",
        400,
        "/tenant",
    ),
    ("events not a list", {"events": {"id": 1}}, "application/json", 400, "/events"),
    ("empty batch", {"events": []}, "application/json", 400, "/events"),
    (
        "more than 1000 events",
        {"events": [ev(id=f"e{i}") for i in range(1001)]},
        "application/json",
        400,
        "/events",
    ),
    ("event not an object", {"events": ["e-1"]}, "application/json", 400, "/events/0"),
    ("id missing", {"events": [ev(id=MISSING)]}, "application/json", 400, "/events/0/id"),
    (
        "channel missing",
        {"events": [ev(channel=MISSING)]},
        "application/json",
        400,
        "/events/0/channel",
    ),
    (
        "quantity missing",
        {"events": [ev(quantity=MISSING)]},
        "application/json",
        400,
        "/events/0/quantity",
    ),
    (
        "occurred_at missing",
        {"events": [ev(occurred_at=MISSING)]},
        "application/json",
        400,
        "/events/0/occurred_at",
    ),
    (
        "extra event field",
        {"events": [ev(colour="red")]},
        "application/json",
        400,
        "/events/0/colour",
    ),
    ("id not a string", {"events": [ev(id=17)]}, "application/json", 400, "/events/0/id"),
    ("id empty", {"events": [ev(id="  ")]}, "application/json", 400, "/events/0/id"),
    ("id too long", {"events": [ev(id="x" * 201)]}, "application/json", 400, "/events/0/id"),
    ("quantity zero", {"events": [ev(quantity=0)]}, "application/json", 400, "/events/0/quantity"),
    (
        "quantity negative",
        {"events": [ev(quantity=-3)]},
        "application/json",
        400,
        "/events/0/quantity",
    ),
    (
        "quantity float",
        {"events": [ev(quantity=1.5)]},
        "application/json",
        400,
        "/events/0/quantity",
    ),
    (
        "quantity whole float",
        {"events": [ev(quantity=2.0)]},
        "application/json",
        400,
        "/events/0/quantity",
    ),
    (
        "quantity string",
        {"events": [ev(quantity="5")]},
        "application/json",
        400,
        "/events/0/quantity",
    ),
    (
        "quantity boolean",
        {"events": [ev(quantity=True)]},
        "application/json",
        400,
        "/events/0/quantity",
    ),
    (
        "quantity huge",
        {"events": [ev(quantity=10**12)]},
        "application/json",
        400,
        "/events/0/quantity",
    ),
    ("quantity beyond 64 bits", {"events": [ev(quantity=10**30)]}, "application/json", 400, None),
    (
        "channel unknown",
        {"events": [ev(channel="fax")]},
        "application/json",
        400,
        "/events/0/channel",
    ),
    (
        "channel inactive",
        {"events": [ev(channel="push")]},
        "application/json",
        400,
        "/events/0/channel",
    ),
    (
        "channel not a string",
        {"events": [ev(channel=["sms"])]},
        "application/json",
        400,
        "/events/0/channel",
    ),
    (
        "occurred_at naive",
        {"events": [ev(occurred_at="2026-11-20T10:00:00")]},
        "application/json",
        400,
        "/events/0/occurred_at",
    ),
    (
        "occurred_at garbage",
        {"events": [ev(occurred_at="yesterday")]},
        "application/json",
        400,
        "/events/0/occurred_at",
    ),
    (
        "occurred_at a number",
        {"events": [ev(occurred_at=1763640000)]},
        "application/json",
        400,
        "/events/0/occurred_at",
    ),
    (
        "occurred_at far in the future",
        {"events": [ev(occurred_at="2026-11-21T12:00:00Z")]},
        "application/json",
        400,
        "/events/0/occurred_at",
    ),
    (
        "closed period",
        {"events": [ev(occurred_at="2026-09-10T12:00:00Z")]},
        "application/json",
        422,
        "/events/0/occurred_at",
    ),
    (
        "metadata a list",
        {"events": [ev(metadata=[1, 2])]},
        "application/json",
        400,
        "/events/0/metadata",
    ),
    (
        "metadata a string",
        {"events": [ev(metadata="x")]},
        "application/json",
        400,
        "/events/0/metadata",
    ),
    (
        "metadata too large",
        {"events": [ev(metadata={"blob": "x" * 5000})]},
        "application/json",
        400,
        "/events/0/metadata",
    ),
    (
        "one bad event among good ones",
        {"events": [ev(id="ok-1"), ev(id="ok-2"), ev(id="bad", quantity=0)]},
        "application/json",
        400,
        "/events/2/quantity",
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "pointer"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_answers_problem_json_and_records_nothing(
    world: World, body, content_type, status, pointer
):
    if isinstance(body, str):
        response = world.alice_api.post(PATH, raw=body, content_type=content_type)
    else:
        response = world.alice_api.post(PATH, body, content_type=content_type)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"].startswith("https://")
    assert problem["title"] and problem["detail"]
    if pointer is not None:
        assert pointer in [error["pointer"] for error in problem["errors"]], problem
    assert_nothing_recorded()


def test_body_too_large_is_413(world: World, settings):
    settings.API_MAX_BODY_BYTES = 10_000
    body = {"events": [ev(id=f"e{i}", metadata={"pad": "x" * 100}) for i in range(100)]}
    response = world.alice_api.post(PATH, body)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    assert "10000" in response.json()["detail"]
    assert_nothing_recorded()


def test_errors_name_every_bad_event(world: World):
    body = {"events": [ev(id="a", quantity=0), ev(id="b"), ev(id="c", channel="fax")]}
    response = world.alice_api.post(PATH, body)
    pointers = {error["pointer"] for error in response.json()["errors"]}
    assert pointers == {"/events/0/quantity", "/events/2/channel"}
    assert {error["index"] for error in response.json()["errors"]} == {0, 2}
