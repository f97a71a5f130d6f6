"""GET /api/v1/authorizations/{id}: an authorization as it stands now — held, committed,
released, expired or denied — for the tenant's own keys only."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tenants.services import api_key_create
from tests.conftest import Api, World
from tests.policies.helpers import authorize, set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock", "authorization_path")


def read(api: Api, authorization_id: str):
    return api.get(f"/api/v1/authorizations/{authorization_id}")


def test_a_held_authorization_reads_as_created(world: World):
    set_rule(world.alpha, "sms", included_units=100)
    created = authorize(world.alice_api, "sms", 30).json()
    response = read(world.bob_api, created["id"])  # another key of the same tenant
    assert response.status_code == 200, response.content
    assert response.json() == created
    assert (created["status"], created["channel"], created["quantity"]) == ("held", "sms", 30)


def test_a_committed_authorization_reads_committed_with_the_quantity_booked(world: World):
    set_rule(world.alpha, "sms", included_units=100)
    held = authorize(world.alice_api, "sms", 30).json()
    world.alice_api.post(f"/api/v1/authorizations/{held['id']}/commit", {"quantity": 12})
    body = read(world.alice_api, held["id"]).json()
    assert (body["status"], body["quantity"], body["committed_quantity"]) == ("committed", 30, 12)


def test_a_released_authorization_reads_released(world: World):
    held = authorize(world.alice_api, "sms", 3).json()
    world.alice_api.post(f"/api/v1/authorizations/{held['id']}/release")
    assert read(world.alice_api, held["id"]).json()["status"] == "released"


def test_a_held_authorization_past_its_expiry_reads_expired(world: World, frozen_clock):
    held = authorize(world.alice_api, "sms", 3).json()
    frozen_clock.shift(timedelta(minutes=9))
    assert read(world.alice_api, held["id"]).json()["status"] == "held"
    frozen_clock.shift(timedelta(minutes=2))  # past the 10 minutes; not swept yet
    assert read(world.alice_api, held["id"]).json()["status"] == "expired"


def test_a_denial_reads_with_its_reason(world: World):
    set_rule(world.alpha, "sms", included_units=5, hard_limit=0)
    denied = authorize(world.alice_api, "sms", 6).json()
    body = read(world.alice_api, denied["id"]).json()
    assert (body["decision"], body["status"], body["reason"]) == (
        "deny",
        "denied",
        "hard_limit_reached",
    )


def test_another_tenants_authorization_is_a_404_problem(world: World):
    held = authorize(world.alice_api, "sms", 3).json()
    response = read(world.gamma_api, held["id"])
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert held["id"] not in response.content.decode()


@pytest.mark.parametrize(
    "authorization_id",
    ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "%00", "1" * 500, "ÄÖÜ"],
)
def test_a_malformed_or_unknown_id_is_a_404_problem(world: World, authorization_id):
    response = read(world.alice_api, authorization_id)
    assert response.status_code == 404
    assert response.json()["type"].endswith("/not-found")


def test_reading_needs_usage_read(world: World):
    held = authorize(world.alice_api, "sms", 3).json()
    writer = Api(api_key_create(tenant=world.alpha, name="w", scopes=["usage:write"]).raw_key)
    reader = Api(api_key_create(tenant=world.alpha, name="r", scopes=["usage:read"]).raw_key)
    assert read(writer, held["id"]).status_code == 403
    assert read(reader, held["id"]).status_code == 200


def test_reading_takes_a_pinned_number_of_queries(world: World, django_assert_num_queries):
    held = authorize(world.alice_api, "sms", 3).json()
    with django_assert_num_queries(2):  # the key, the authorization with its channel
        read(world.alice_api, held["id"])
