"""GET /notifications and the webhook endpoints API."""

from __future__ import annotations

import pytest

from notifications.models import WebhookEndpoint
from notifications.services.notify import notify
from tests.conftest import World


def test_notifications_are_listed_newest_first_and_paginated(world: World):
    from datetime import timedelta

    from django.utils import timezone

    for n in range(3):
        notify(
            tenant=world.alpha,
            kind="threshold_warning",
            dedupe_key=f"n{n}",
            payload={"threshold": n},
            now=timezone.now() + timedelta(minutes=n),
        )
    notify(tenant=world.gamma, kind="threshold_warning", dedupe_key="other", payload={})
    page = world.bob_api.get("/api/v1/notifications", {"page_size": 2}).json()
    assert [n["payload"]["threshold"] for n in page["results"]] == [2, 1]
    rest = world.bob_api.client.get(page["next"]).json()
    assert [n["payload"]["threshold"] for n in rest["results"]] == [0]
    assert len(world.gamma_api.get("/api/v1/notifications").json()["results"]) == 1


def test_webhook_endpoint_secret_is_shown_once(world: World, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    created = world.alice_api.post("/api/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/x"})
    assert created.status_code == 201, created.content
    assert created.json()["secret"].startswith("whsec_")
    listed = world.bob_api.get("/api/v1/webhook-endpoints").json()["results"]
    assert [e["id"] for e in listed] == [created.json()["id"]]
    assert "secret" not in listed[0]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"url": "not a url"}, "http(s)"),
        ({"url": "ftp://example.com/x"}, "http(s)"),
        ({"url": "http://127.0.0.1/hook"}, "non-public"),
        ({"url": "http://localhost/hook"}, "non-public"),
        ({"url": "http://10.1.2.3/hook"}, "non-public"),
        ({"url": "http://169.254.169.254/latest"}, "non-public"),
        ({"url": "http://[::1]/hook"}, "non-public"),
        ({"url": "http://user:pw@example.com/hook"}, "credentials"),
        ({"url": "http://does-not-exist.invalid/hook"}, "resolve"),
        ({"url": "http://127.0.0.1/hook", "kinds": ["nonsense"]}, "nonsense"),
        ({}, "url"),
        ({"url": "http://127.0.0.1/hook", "colour": "red"}, "colour"),
    ],
)
def test_bad_webhook_endpoints_are_refused(world: World, body, detail):
    response = world.alice_api.post("/api/v1/webhook-endpoints", body)
    assert response.status_code == 400, response.content
    assert detail in json_text(response)
    assert not WebhookEndpoint.objects.exists()


def json_text(response) -> str:
    return response.content.decode()


def test_another_tenants_endpoint_cannot_be_deleted(world: World, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    endpoint_id = world.alice_api.post(
        "/api/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/x"}
    ).json()["id"]
    assert (
        world.gamma_api.client.delete(f"/api/v1/webhook-endpoints/{endpoint_id}").status_code == 404
    )
    assert world.gamma_api.client.delete("/api/v1/webhook-endpoints/garbage").status_code == 404
    assert (
        world.bob_api.client.delete(f"/api/v1/webhook-endpoints/{endpoint_id}").status_code == 204
    )
    assert world.alice_api.get("/api/v1/webhook-endpoints").json()["results"] == []


def test_webhook_endpoints_need_their_scope(world: World):
    from tenants.services import api_key_create
    from tests.conftest import Api

    reader = Api(api_key_create(tenant=world.alpha, name="r", scopes=["usage:read"]).raw_key)
    assert reader.get("/api/v1/webhook-endpoints").status_code == 403
    assert reader.get("/api/v1/notifications").status_code == 200
