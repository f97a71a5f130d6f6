"""Every problem names the input at fault one way, whatever the endpoint and whoever
found the fault (a serializer, the parser, a service): ``pointer`` a JSON Pointer
(RFC 6901) — ``/events/0/quantity``, never ``events.0.quantity`` or ``kinds.0`` — and
``field`` the same place as a name, ``events[0].quantity``."""

from __future__ import annotations

import re
from typing import Any

import pytest

from creditguard.errors import input_error
from tests.conftest import Api, World, event, issue

# RFC 6901: "/" then reference tokens, "~" only as "~0" or "~1"; "/" alone for the body.
JSON_POINTER = re.compile(r"^(/([^/~]|~[01])*)+$")


def errors_of(response: Any, status: int = 400) -> list[dict[str, Any]]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    errors = response.json()["errors"]
    for error in errors:
        assert JSON_POINTER.match(error["pointer"]), error
        assert not re.search(r"\.\d", error["field"] or ""), error  # no "kinds.0"
    return errors


def places(response: Any, status: int = 400) -> list[tuple[str, str | None]]:
    return [(e["pointer"], e["field"]) for e in errors_of(response, status)]


@pytest.mark.parametrize(
    ("path", "pointer", "field"),
    [
        ([], "/", None),
        (["events", 0, "quantity"], "/events/0/quantity", "events[0].quantity"),
        (["kinds", 1], "/kinds/1", "kinds[1]"),
        (["events", 0, "metadata", "a/b", "c~d"], "/events/0/metadata/a~1b/c~0d",
         "events[0].metadata.a/b.c~d"),
        (["period"], "/period", "period"),
    ],
)  # fmt: skip
def test_one_helper_writes_pointer_and_field(path, pointer, field):
    assert input_error(path, "bad") == {"pointer": pointer, "field": field, "detail": "bad"}
    assert input_error(path, "bad", index=3)["index"] == 3


def test_usage_events_point_into_the_batch(world: World):
    response = world.alice_api.ingest(
        [event("a"), event("b", quantity=0), {**event("c"), "x/y~z": 1}]
    )
    assert places(response) == [
        ("/events/1/quantity", "events[1].quantity"),
        ("/events/2/x~1y~0z", "events[2].x/y~z"),
    ]
    assert [e["index"] for e in errors_of(response)] == [1, 2]


def test_usage_events_conflicts_point_at_each_event_with_the_id(world: World):
    assert world.alice_api.ingest([event("dup", quantity=1)]).status_code == 200
    response = world.alice_api.ingest([event("new"), event("dup", quantity=2)])
    assert places(response, 409) == [("/events/1/id", "events[1].id")]
    within = world.alice_api.ingest([event("x", quantity=1), event("y"), event("x", quantity=2)])
    assert places(within, 409) == [
        ("/events/0/id", "events[0].id"),
        ("/events/2/id", "events[2].id"),
    ]


def test_authorizations_point_at_the_field(world: World):
    response = world.alice_api.post("/api/v1/authorizations", {"channel": 5, "quantity": 1})
    assert places(response) == [("/channel", "channel")]
    response = world.alice_api.post("/api/v1/authorizations", [1])
    assert places(response) == [("/", None)]
    held = world.alice_api.post("/api/v1/authorizations", {"channel": "sms", "quantity": 2}).json()
    commit = world.alice_api.post(f"/api/v1/authorizations/{held['id']}/commit", {"quantity": 3})
    assert places(commit) == [("/quantity", "quantity")]


def test_webhook_endpoints_point_at_the_kind(world: World):
    path = "/api/v1/webhook-endpoints"
    url = "https://8.8.8.8/hook"  # an address, globally routable: no name to resolve
    unknown = {"url": url, "kinds": ["threshold_warning", "nope"]}
    assert places(world.alice_api.post(path, unknown)) == [("/kinds/1", "kinds[1]")]
    not_a_string = {"url": url, "kinds": [["threshold_warning"]]}
    assert places(world.alice_api.post(path, not_a_string)) == [("/kinds/0", "kinds[0]")]
    assert places(world.alice_api.post(path, {"url": "ftp://x"})) == [("/url", "url")]
    platform_kind = {"url": url, "kinds": ["threshold_warning", "period.closed"]}  # the service's
    assert places(world.alice_api.post(path, platform_kind)) == [("/kinds/1", "kinds[1]")]


def test_billing_export_parameters_are_pointed_at(db):
    key = Api(issue(None, ["billing:read"]).raw_key)
    assert places(key.get("/api/v1/billing/export", {"period": "2026-13"})) == [
        ("/period", "period")
    ]
    response = key.get("/api/v1/billing/export", {"period": "2026-11", "format": "xml"})
    assert places(response) == [("/format", "format")]
    response = key.get("/api/v1/billing/line-items", {"period": "2026-11", "cursor": "x"})
    assert places(response) == [("/cursor", "cursor")]


def test_usage_query_parameters_are_pointed_at(world: World):
    response = world.alice_api.get("/api/v1/usage", {"colour": "red"})
    assert places(response) == [("/colour", "colour")]
    response = world.alice_api.get("/api/v1/usage", {"from": "yesterday"})
    assert places(response) == [("/from", "from")]
    response = world.alice_api.get("/api/v1/usage", {"channel": "fax"})
    assert places(response) == [("/channel", "channel")]


def test_the_parser_points_into_nested_documents(world: World):
    response = world.alice_api.ingest([{**event("a"), "metadata": {"k/1": "x\x00"}}])
    assert places(response) == [("/events/0/metadata/k~11", "events[0].metadata.k/1")]
