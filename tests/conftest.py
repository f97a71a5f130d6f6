"""Shared fixtures. Tests run against real PostgreSQL and Redis (scripts/test.sh)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.conf import settings
from rest_framework.test import APIClient

from tenants.models import Scope, Tenant
from tenants.services import IssuedKey, api_key_create
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.workers import broker  # noqa: F401 - a fixture: a Redis broker of the test's own

ALL_SCOPES = list(Scope.values)
# The instant ``frozen_clock`` stops at: the middle of a month in every tenant's time zone.
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def pytest_configure(config: pytest.Config) -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        raise pytest.UsageError(
            "The tests need PostgreSQL: run them with scripts/test.sh, or set DATABASE_URL "
            f"to a PostgreSQL server (got {engine})."
        )


@pytest.fixture(autouse=True)
def _auth_failure_throttle_off(settings: Any) -> None:
    """Every test client comes from 127.0.0.1 and the failure windows live in a Redis
    shared by parallel test processes, so the throttle of failed authentications is off
    unless a test turns it on (tests/tenants/test_authentication.py does)."""
    settings.API_AUTH_FAILURES_PER_MINUTE = 0


@pytest.fixture(autouse=True)
def _welcome_off(request: pytest.FixtureRequest) -> Iterator[None]:
    """A new tenant's welcome (``policies.receivers.tenant_created_welcome``) is one more
    notification and e-mail per tenant, which the tests of every other notification would
    count; it is sent only in tests that ask for the ``welcome`` fixture."""
    from policies.receivers import tenant_created_welcome
    from tenants.services import tenant_created

    if "welcome" in request.fixturenames:
        yield
        return
    tenant_created.disconnect(dispatch_uid="policies.tenant_welcome")
    yield
    tenant_created.connect(tenant_created_welcome, dispatch_uid="policies.tenant_welcome")


@pytest.fixture
def welcome() -> None:
    """New tenants get their welcome in this test (see ``_welcome_off``)."""


@pytest.fixture
def frozen_clock() -> Iterator[time_machine.Traveller]:
    """The clock stopped at ``NOW`` for the test; the traveller moves it
    (``frozen_clock.shift(timedelta(hours=1))``). A module whose every test needs it says
    ``pytestmark = pytest.mark.usefixtures("frozen_clock")``."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


class Api:
    """An API client holding one key; JSON in, response out."""

    def __init__(self, raw_key: str | None) -> None:
        self.client = APIClient()
        if raw_key:
            self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.client.get(path, params or {})

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        raw: str | None = None,
        content_type: str = "application/json",
    ) -> Any:
        # No body at all when none is given (not the JSON document ``null``).
        data = raw if raw is not None else "" if body is None else json.dumps(body)
        return self.client.generic("POST", path, data, content_type=content_type)

    def ingest(self, events: list[dict[str, Any]]) -> Any:
        return self.post("/api/v1/usage-events", {"events": events})


def issue(tenant: Tenant | None, scopes: list[str] | None = None) -> IssuedKey:
    return api_key_create(tenant=tenant, name="test key", scopes=scopes or ALL_SCOPES)


@dataclass
class World:
    """Three tenants: alpha has two users (alice, bob) who share everything, each with
    a key of their own; beta and gamma are other customers who must see nothing of alpha's."""

    alpha: Tenant
    beta: Tenant
    gamma: Tenant
    alice_api: Api
    bob_api: Api
    beta_api: Api
    gamma_api: Api


@pytest.fixture
def world(db: None) -> World:
    alpha = TenantFactory.create(slug="alpha", name="Alpha", time_zone="Europe/Berlin")
    beta = TenantFactory.create(slug="beta", name="Beta", time_zone="America/New_York")
    gamma = TenantFactory.create(slug="gamma", name="Gamma", time_zone="UTC")
    alice = MembershipFactory.create(tenant=alpha, user=UserFactory.create(username="alice")).user
    bob = MembershipFactory.create(tenant=alpha, user=UserFactory.create(username="bob")).user
    return World(
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        alice_api=Api(
            api_key_create(tenant=alpha, name="alice", scopes=ALL_SCOPES, created_by=alice).raw_key
        ),
        bob_api=Api(
            api_key_create(tenant=alpha, name="bob", scopes=ALL_SCOPES, created_by=bob).raw_key
        ),
        beta_api=Api(issue(beta).raw_key),
        gamma_api=Api(issue(gamma).raw_key),
    )


def event(
    event_id: str,
    *,
    channel: str = "sms",
    quantity: int = 1,
    occurred_at: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    from django.utils import timezone

    return {
        "id": event_id,
        "channel": channel,
        "quantity": quantity,
        "occurred_at": occurred_at or timezone.now().isoformat(),
        **extra,
    }
