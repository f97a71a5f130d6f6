"""API key authentication, scopes and tenant isolation."""

from __future__ import annotations

import secrets
import socket
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from creditguard.api.throttling import clear_local_windows
from creditguard.redis_guard import redis_breaker_reset
from metering.models import UsageEvent
from tenants.models import ApiKey, Scope
from tenants.services import api_key_create, api_key_revoke, hash_api_key
from tests.conftest import Api, World, event

ENDPOINTS = [
    ("get", "/api/v1/balances"),
    ("get", "/api/v1/usage"),
    ("post", "/api/v1/usage-events"),
]


def call(api: Api, method: str, path: str):
    if method == "get":
        return api.get(path)
    return api.ingest([event("auth-1")])


def assert_problem(response, status: int) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == status


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_key_is_401_with_bearer_challenge(world: World, method, path):
    response = call(Api(None), method, path)
    assert_problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer cg__x",
        "Token cg_abc_def",
        "Bearer cg_\x00_x",
        "Bearer cg_0123456789a\x00_secret",
    ],
)
def test_malformed_authorization_is_401(world: World, header):
    api = Api(None)
    api.client.credentials(HTTP_AUTHORIZATION=header)
    assert_problem(api.get("/api/v1/balances"), 401)


def test_unknown_key_is_401(world: World):
    assert_problem(Api("cg_0123456789ab_doesnotexist").get("/api/v1/balances"), 401)


def test_right_prefix_wrong_secret_is_401(world: World):
    issued = api_key_create(tenant=world.alpha, name="k", scopes=[Scope.USAGE_READ])
    forged = f"cg_{issued.api_key.prefix}_forgedsecret"
    assert_problem(Api(forged).get("/api/v1/balances"), 401)


def test_revoked_key_is_401(world: World):
    issued = api_key_create(tenant=world.alpha, name="k", scopes=[Scope.USAGE_READ])
    api = Api(issued.raw_key)
    assert api.get("/api/v1/balances").status_code == 200
    api_key_revoke(api_key=issued.api_key)
    response = api.get("/api/v1/balances")
    assert_problem(response, 401)
    assert "revoked" in response.json()["detail"]


@pytest.mark.parametrize(
    ("scopes", "method", "path"),
    [
        ([Scope.USAGE_WRITE], "get", "/api/v1/balances"),
        ([Scope.USAGE_WRITE], "get", "/api/v1/usage"),
        ([Scope.USAGE_READ], "post", "/api/v1/usage-events"),
        ([Scope.BILLING_READ], "get", "/api/v1/balances"),
    ],
)
def test_missing_scope_is_403_naming_it(world: World, scopes, method, path):
    api = Api(api_key_create(tenant=world.alpha, name="k", scopes=scopes).raw_key)
    response = call(api, method, path)
    assert_problem(response, 403)
    assert "scope" in response.json()["detail"]
    assert UsageEvent.objects.count() == 0


def test_platform_key_cannot_use_tenant_endpoints(world: World):
    api = Api(api_key_create(tenant=None, name="billing", scopes=list(Scope.values)).raw_key)
    assert_problem(api.get("/api/v1/balances"), 403)
    assert_problem(api.ingest([event("p-1")]), 403)
    assert UsageEvent.objects.count() == 0


def test_only_a_hash_of_the_key_is_stored(world: World):
    issued = api_key_create(tenant=world.alpha, name="k", scopes=[Scope.USAGE_READ])
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    assert issued.raw_key not in (stored.secret_hash, stored.prefix, stored.name)
    assert stored.secret_hash == hash_api_key(issued.raw_key)


def test_last_used_is_recorded(world: World):
    issued = api_key_create(tenant=world.alpha, name="k", scopes=[Scope.USAGE_READ])
    assert issued.api_key.last_used_at is None
    Api(issued.raw_key).get("/api/v1/balances")
    issued.api_key.refresh_from_db()
    assert issued.api_key.last_used_at is not None
    assert (timezone.now() - issued.api_key.last_used_at).total_seconds() < 60


def test_users_of_one_tenant_share_its_data(world: World):
    world.alice_api.ingest([event("shared", channel="sms", quantity=7)])
    sms = {c["channel"]: c for c in world.bob_api.get("/api/v1/balances").json()["channels"]}["sms"]
    assert sms["used"] == 7


def test_other_tenants_never_see_alpha_data(world: World):
    world.alice_api.ingest([event("secret", channel="sms", quantity=7)])
    for api in (world.beta_api, world.gamma_api):
        balances = api.get("/api/v1/balances").json()["channels"]
        assert all(c["used"] == 0 for c in balances)
        usage = api.get("/api/v1/usage").json()["series"]
        assert all(series["total"] == 0 for series in usage)


def test_key_endpoint_describes_the_calling_key(world: World):
    issued = api_key_create(tenant=world.alpha, name="ci", scopes=[Scope.USAGE_READ])
    body = Api(issued.raw_key).get("/api/v1/key").json()
    assert body == {
        "name": "ci",
        "prefix": issued.api_key.prefix,
        "tenant": "alpha",
        "scopes": ["usage:read"],
    }
    platform = api_key_create(tenant=None, name="billing", scopes=[Scope.BILLING_READ])
    assert Api(platform.raw_key).get("/api/v1/key").json()["tenant"] is None
    assert Api(None).get("/api/v1/key").status_code == 401


@pytest.fixture
def fresh_limiter():
    yield
    redis_breaker_reset()
    clear_local_windows()


def from_address(raw_key: str, address: str) -> Api:
    api = Api(raw_key)
    api.client.defaults["REMOTE_ADDR"] = address
    return api


def unknown_key() -> str:
    return f"cg_{secrets.token_hex(6)}_wrong"


def unique_address() -> str:
    return f"198.51.100.{secrets.randbelow(250) + 1}"


def test_repeated_failures_from_one_address_answer_429_with_retry_after(
    world: World, settings, fresh_limiter
):
    settings.API_AUTH_FAILURES_PER_MINUTE = 5
    address = unique_address()
    statuses = [
        from_address(unknown_key(), address).get("/api/v1/key").status_code for _ in range(8)
    ]
    assert statuses == [401] * 5 + [429] * 3
    refused = from_address(unknown_key(), address).get("/api/v1/key")
    assert_problem(refused, 429)
    assert 0 < int(refused["Retry-After"]) <= 60
    # Another address is not held back.
    assert_problem(from_address(unknown_key(), unique_address()).get("/api/v1/key"), 401)


def test_repeated_failures_for_one_key_prefix_answer_429_from_any_address(
    world: World, settings, fresh_limiter
):
    settings.API_AUTH_FAILURES_PER_MINUTE = 3
    issued = api_key_create(tenant=world.alpha, name="k", scopes=[Scope.USAGE_READ])
    forged = f"cg_{issued.api_key.prefix}_forgedsecret"
    statuses = [
        from_address(forged, f"203.0.113.{n}").get("/api/v1/key").status_code for n in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]


def test_the_failure_throttle_never_refuses_a_valid_key(world: World, settings, fresh_limiter):
    settings.API_AUTH_FAILURES_PER_MINUTE = 2
    issued = api_key_create(tenant=world.alpha, name="k", scopes=[Scope.USAGE_READ])
    address = unique_address()
    forged = f"cg_{issued.api_key.prefix}_forgedsecret"
    for _ in range(4):
        from_address(forged, address).get("/api/v1/key")
    assert from_address(forged, address).get("/api/v1/key").status_code == 429
    assert from_address(issued.raw_key, address).get("/api/v1/key").status_code == 200


def test_failures_older_than_a_minute_no_longer_count(world: World, settings, fresh_limiter):
    settings.API_AUTH_FAILURES_PER_MINUTE = 2
    address = unique_address()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for _ in range(2):
            from_address(unknown_key(), address).get("/api/v1/key")
        assert from_address(unknown_key(), address).get("/api/v1/key").status_code == 429
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        assert from_address(unknown_key(), address).get("/api/v1/key").status_code == 401


def test_without_redis_failures_are_still_throttled_in_the_process(
    world: World, settings, fresh_limiter
):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"
    settings.API_AUTH_FAILURES_PER_MINUTE = 3
    address = unique_address()
    statuses = [
        from_address(unknown_key(), address).get("/api/v1/key").status_code for _ in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
    assert world.alice_api.get("/api/v1/key").status_code == 200
