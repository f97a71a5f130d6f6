"""Request bodies as the API reads them: chunked bodies are read (gunicorn) or refused
with 411 (a server that cannot de-chunk), never ignored; a body that is not a JSON
object where an object is required is a 400 naming the body."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings

from metering.models import Authorization, UsageEvent
from policies.services.authorize import authorization_create
from tenants.services import api_key_create
from tests.conftest import ALL_SCOPES, World, event
from tests.factories import TenantFactory
from tests.workers import app_environment, gunicorn

SMALL_BODY_LIMIT = 2048


@pytest.fixture(scope="module")
def gunicorn_port(django_db_setup, django_db_blocker) -> Iterator[int]:
    """gunicorn (which de-chunks request bodies) on the test database."""
    env = app_environment(
        DATABASE_CONN_MAX_AGE="0",
        REDIS_URL=django_settings.REDIS_URL,
        API_MAX_BODY_BYTES=str(SMALL_BODY_LIMIT),
    )
    with gunicorn(env, workers=1) as base:
        yield int(base.rsplit(":", 1)[1])


def send_chunked(
    port: int, path: str, key: str, chunks: list[bytes]
) -> tuple[int, str, dict[str, Any]]:
    """POST ``chunks`` with ``Transfer-Encoding: chunked`` and no Content-Length."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST",
            path,
            body=iter(chunks),
            headers={
                "Authorization": f"Bearer {key}",
                "Content-Type": "application/json",
                "Transfer-Encoding": "chunked",
            },
            encode_chunked=True,
        )
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), json.loads(response.read())
    finally:
        conn.close()


# The server runs in another process: the data must be committed, and the seeded
# channels restored after the test flushes the tables.
over_a_real_server = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def tenant_key(db) -> tuple[Any, str]:
    tenant = TenantFactory.create(slug="chunky", time_zone="UTC")
    return tenant, api_key_create(tenant=tenant, name="k", scopes=ALL_SCOPES).raw_key


@over_a_real_server
def test_chunked_commit_body_is_read_under_gunicorn(gunicorn_port, tenant_key):
    tenant, key = tenant_key
    held = authorization_create(tenant=tenant, channel_code="sms", quantity=10)
    status, content_type, body = send_chunked(
        gunicorn_port,
        f"/api/v1/authorizations/{held.public_id}/commit",
        key,
        [b'{"quan', b'tity": 1}'],
    )
    assert status == 200, body
    assert body["committed_quantity"] == 1
    assert UsageEvent.objects.get(tenant=tenant).quantity == 1


@over_a_real_server
def test_chunked_usage_events_are_recorded_under_gunicorn(gunicorn_port, tenant_key):
    tenant, key = tenant_key
    document = json.dumps({"events": [event("chunked-1", quantity=3)]}).encode()
    status, _, body = send_chunked(
        gunicorn_port, "/api/v1/usage-events", key, [document[:10], document[10:]]
    )
    assert (status, body) == (200, {"accepted": 1, "duplicates": 0})
    assert UsageEvent.objects.get(tenant=tenant).client_event_id == "chunked-1"


@over_a_real_server
def test_chunked_body_past_the_limit_is_413_under_gunicorn(gunicorn_port, tenant_key):
    tenant, key = tenant_key
    document = json.dumps(
        {"events": [event(f"e{i}", metadata={"pad": "x" * 200}) for i in range(20)]}
    ).encode()
    assert len(document) > SMALL_BODY_LIMIT
    chunks = [document[i : i + 500] for i in range(0, len(document), 500)]
    status, content_type, body = send_chunked(gunicorn_port, "/api/v1/usage-events", key, chunks)
    assert (status, content_type) == (413, "application/problem+json")
    assert str(SMALL_BODY_LIMIT) in body["detail"]
    assert not UsageEvent.objects.filter(tenant=tenant).exists()


@over_a_real_server
def test_chunked_body_is_refused_with_411_where_the_server_cannot_read_it(live_server, tenant_key):
    # Django's development server (and live_server) does not de-chunk bodies.
    tenant, key = tenant_key
    held = authorization_create(tenant=tenant, channel_code="sms", quantity=10)
    port = int(live_server.url.rsplit(":", 1)[1])
    status, content_type, body = send_chunked(
        port, f"/api/v1/authorizations/{held.public_id}/commit", key, [b'{"quantity": 1}']
    )
    assert (status, content_type) == (411, "application/problem+json")
    assert "Content-Length" in body["detail"]
    held.refresh_from_db()
    assert held.status == Authorization.Status.HELD
    assert not UsageEvent.objects.exists()


NOT_OBJECTS = ["null", "[]", "[{}]", '"quantity"', "1", "true"]


@pytest.mark.parametrize("raw", NOT_OBJECTS)
def test_commit_with_a_body_that_is_not_an_object_is_400_and_commits_nothing(world: World, raw):
    held = authorization_create(tenant=world.alpha, channel_code="sms", quantity=10)
    response = world.alice_api.post(f"/api/v1/authorizations/{held.public_id}/commit", raw=raw)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["pointer"] == "/"
    assert "body" in response.json()["detail"]
    held.refresh_from_db()
    assert held.status == Authorization.Status.HELD
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize("raw", NOT_OBJECTS)
@pytest.mark.parametrize(
    "path", ["/api/v1/usage-events", "/api/v1/authorizations", "/api/v1/webhook-endpoints",
             "/api/v1/policy/acknowledge"],
)  # fmt: skip
def test_a_body_that_is_not_an_object_is_400_naming_the_body(world: World, path, raw):
    response = world.alice_api.post(path, raw=raw)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["pointer"] == "/"


def test_commit_without_a_body_commits_everything(world: World):
    held = authorization_create(tenant=world.alpha, channel_code="sms", quantity=10)
    path = f"/api/v1/authorizations/{held.public_id}/commit"
    # What `curl -X POST -d ''` sends: an empty form-encoded body.
    response = world.alice_api.client.post(
        path, "", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200, response.content
    assert response.json()["committed_quantity"] == 10
