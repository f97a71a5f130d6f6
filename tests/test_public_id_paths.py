"""Public ids in API paths: the URL resolver takes only a UUID there (one converter, not a
parse-or-404 in each service), and anything else is a 404 problem, like an unknown id."""

from __future__ import annotations

import uuid

import pytest
from django.urls import Resolver404, resolve

from tests.conftest import World

ID = "0b6f3c1e-5d2a-4f8e-9a7b-3c4d5e6f7a8b"
ROUTES = [
    ("POST", "/api/v1/authorizations/{}/commit", "authorization_id"),
    ("POST", "/api/v1/authorizations/{}/release", "authorization_id"),
    ("POST", "/api/v1/topup-offers/{}/accept", "offer_id"),
    ("DELETE", "/api/v1/webhook-endpoints/{}", "endpoint_id"),
]


@pytest.mark.parametrize(("method", "path", "name"), ROUTES)
def test_a_public_id_reaches_the_view_as_a_uuid(method, path, name):
    assert resolve(path.format(ID)).kwargs == {name: uuid.UUID(ID)}


@pytest.mark.parametrize(("method", "path", "name"), ROUTES)
def test_a_malformed_public_id_is_not_routed(method, path, name):
    with pytest.raises(Resolver404):
        resolve(path.format("not-a-uuid"))


@pytest.mark.parametrize(("method", "path", "name"), ROUTES)
@pytest.mark.parametrize("public_id", ["not-a-uuid", "%00", ID[:-1], ID + "0"])
def test_a_malformed_public_id_is_a_404_problem(world: World, method, path, name, public_id):
    response = world.alice_api.client.generic(method, path.format(public_id))
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 404
