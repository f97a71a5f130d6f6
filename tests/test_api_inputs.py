"""Inputs that once answered 500: each is now a 400 problem naming what is wrong, and
writes nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from metering.models import Authorization, LedgerEntry, UsageEvent
from notifications.models import WebhookEndpoint
from policies.services.authorize import authorization_create
from tests.conftest import World, event

pytestmark = pytest.mark.usefixtures("frozen_clock")


def assert_problem(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


def pointers(response: Any) -> list[str]:
    return [error["pointer"] for error in assert_problem(response)["errors"]]


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("extra", "pointer"),
    [
        ({"id": "evt\x00-1"}, "/events/0/id"),
        ({"metadata": {"k\x00": "v"}}, "/events/0/metadata/k\\u0000"),
        ({"metadata": {"k": "v\x00"}}, "/events/0/metadata/k"),
        ({"metadata": {"k": [{"deep": ["x\x00"]}]}}, "/events/0/metadata/k/0/deep/0"),
        ({"channel": "s\x00ms"}, "/events/0/channel"),
        ({"occurred_at": "2026-11-20T12:00:00\x00Z"}, "/events/0/occurred_at"),
    ],
)
def test_a_nul_character_in_an_event_is_400_naming_it(world: World, extra, pointer):
    response = world.alice_api.ingest([event("e-1", **extra)])
    assert pointer in pointers(response)
    assert not UsageEvent.objects.exists()


def test_metadata_nested_255_levels_is_400(world: World):
    body = {"events": [event("e-1", metadata=nested(255))]}
    assert len(json.dumps(body)) < 4096
    response = world.alice_api.post("/api/v1/usage-events", body)
    assert pointers(response)[0].startswith("/events/0/metadata/a/a/a")
    assert not UsageEvent.objects.exists()


def test_a_body_may_nest_32_levels_and_not_33(world: World):
    # The body, its events list and the event take three levels before the metadata.
    accepted = world.alice_api.ingest([event("e-1", metadata=nested(29))])
    assert accepted.status_code == 200, accepted.content
    refused = world.alice_api.ingest([event("e-2", metadata=nested(30))])
    assert pointers(refused) == ["/events/0/metadata" + "/a" * 29]
    assert UsageEvent.objects.count() == 1


@pytest.mark.parametrize(
    "occurred_at",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+05:00",
        "0001-01-01T00:00:00-05:00",
        "9999-12-31T23:59:59-05:00",
        "1999-12-31T23:59:59Z",
        "2026-11-20T12:00:00+20:00",
    ],
)
def test_an_occurred_at_out_of_range_is_400_naming_it(world: World, occurred_at):
    response = world.alice_api.ingest([event("e-1", occurred_at=occurred_at)])
    assert pointers(response) == ["/events/0/occurred_at"]
    assert not UsageEvent.objects.exists()


def test_an_occurred_at_with_an_offset_is_recorded_in_utc(world: World):
    response = world.alice_api.ingest([event("e-1", occurred_at="2026-11-20T16:00:00+05:00")])
    assert response.status_code == 200, response.content
    assert UsageEvent.objects.get().occurred_at.isoformat() == "2026-11-20T11:00:00+00:00"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "2026-11-25T12:00:00+20:00"}, "to"),
        ({"from": "2026-11-01T00:00:00-16:00"}, "from"),
        ({"to": "0001-01-01T00:00:00Z"}, "to"),
        ({"from": "9999-12-31T00:00:00Z"}, "from"),
        ({"from": "9999-12-31T00:00:00Z", "to": "9999-12-31T23:00:00Z"}, "from"),
        ({"from": "0001-01-01T00:00:00+05:00"}, "from"),
        ({"channel": "s\x00ms"}, "channel"),
        ({"granularity": "day\x00"}, "granularity"),
    ],
)
def test_usage_with_an_extreme_parameter_is_400_naming_it(world: World, params, field):
    response = world.alice_api.get("/api/v1/usage", params)
    assert field in [error["field"] for error in assert_problem(response)["errors"]]


def test_usage_with_a_large_offset_within_limits_answers(world: World):
    response = world.alice_api.get(
        "/api/v1/usage", {"from": "2026-11-19T00:00:00+14:00", "to": "2026-11-20T00:00:00-12:00"}
    )
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "cursor",
    [
        "cD0nIE9SIDE9MS0t",  # p=' OR 1=1--
        base64.b64encode(b"p=2026-13-45").decode(),
        base64.b64encode(b"p=\x00").decode(),
        base64.b64encode(b"o=-1&r=1").decode(),
        "not base64!",
    ],
)
@pytest.mark.parametrize(
    "path", ["/api/v1/notifications", "/api/v1/webhook-endpoints", "/api/v1/topup-offers"]
)
def test_a_crafted_cursor_is_400_invalid_cursor(world: World, path, cursor):
    problem = assert_problem(world.alice_api.get(path, {"cursor": cursor}))
    assert problem["errors"] == [
        {"pointer": "/cursor", "field": "cursor", "detail": "invalid cursor"}
    ]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"channel": "s\x00ms", "quantity": 1}, "/channel"),
        ({"channel": "sms", "quantity": 1, "idempotency_key": "k\x00"}, "/idempotency_key"),
    ],
)
def test_a_nul_character_in_an_authorization_is_400_naming_it(world: World, body, pointer):
    response = world.alice_api.post("/api/v1/authorizations", body)
    assert pointers(response) == [pointer]
    assert not Authorization.objects.exists()


def test_a_nul_character_in_a_webhook_url_is_400(world: World):
    response = world.alice_api.post("/api/v1/webhook-endpoints", {"url": "https://a\x00.example"})
    assert pointers(response) == ["/url"]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("client_id", ["authorization:", "authorization:x", "authorization:{id}"])
def test_a_client_event_id_in_the_reserved_namespace_is_400(world: World, client_id):
    held = authorization_create(tenant=world.alpha, channel_code="sms", quantity=3)
    response = world.alice_api.ingest([event(client_id.format(id=held.public_id))])
    assert pointers(response) == ["/events/0/id"]
    assert "reserved" in response.json()["errors"][0]["detail"]
    assert not UsageEvent.objects.exists()


def test_a_client_cannot_break_a_later_commit(world: World):
    held = authorization_create(tenant=world.alpha, channel_code="sms", quantity=3)
    world.alice_api.ingest([event(f"authorization:{held.public_id}")])
    response = world.alice_api.post(f"/api/v1/authorizations/{held.public_id}/commit")
    assert response.status_code == 200, response.content
    assert response.json()["committed_quantity"] == 3
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.USAGE).count() == 1
