"""Shared fixtures. Tests run against real PostgreSQL and Redis (scripts/test.sh)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatch
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from django.conf import settings
from django.test.utils import override_settings
from rest_framework.test import APIClient

from tenants.models import Scope, Tenant
from tenants.services import IssuedKey, api_key_create
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.workers import (
    broker,  # noqa: F401 - a fixture: a Redis broker of the test's own
    publish_to,
)

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
    _redis_of_this_worker()


def worker_redis_url(url: str, worker: str) -> str:
    """The Redis of xdist worker ``worker`` (gw0, gw1, …): ``url``'s database number minus
    the worker's, so that ``/15`` is gw0's and ``/14`` gw1's."""
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) - int(worker.removeprefix("gw"))
    if database < 0:
        raise pytest.UsageError(
            f"{worker} has no Redis database of its own below {url}: run fewer workers (-n) "
            "or give TEST_REDIS_URL a higher database number."
        )
    return parts._replace(path=f"/{database}").geturl()


def _redis_of_this_worker() -> None:
    """Under pytest-xdist (scripts/test.sh runs ``-n auto``) every worker has a test
    database of its own (pytest-django names it ``test_<name>_gw1``) and here a Redis
    database of its own (``worker_redis_url``): the workers' tenants share ids, so a shared
    cache or broker would mix their counters, windows and tasks. Applied before any test
    reads the cache, to this process's settings, its Celery producers and the environment
    its subprocesses inherit (tests/test_parallel_workers.py checks them)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # set by xdist in its workers
    if not worker or not settings.REDIS_URL:
        return
    if settings.CELERY_BROKER_URL != settings.REDIS_URL:
        raise pytest.UsageError(
            "Parallel test workers take REDIS_URL's databases, not Redis Sentinel's "
            "(REDIS_SENTINELS): run the tests with -n 0."
        )
    url = worker_redis_url(settings.REDIS_URL, worker)
    caches = {"default": {**settings.CACHES["default"], "LOCATION": url}}
    # Never disabled: the session's settings. Through the setting_changed signal, which
    # makes Django's cache handler build its caches again.
    override_settings(REDIS_URL=url, CELERY_BROKER_URL=url, CACHES=caches).enable()
    publish_to(url)
    os.environ["REDIS_URL"] = url


# Under xdist (scripts/test.sh: ``-n auto --dist loadgroup``) the tests that run on one
# worker, one after another, and why; by node id, in the controller (the ``xdist_group``
# mark groups nothing under pytest 9.2: pytest-dev/pytest-xdist#1386). Only transactional
# tests: a group is sent where its first test stands in pytest-django's order (plain
# database tests, then transactional ones, whose flush empties the seeded tables), so a
# plain test in a group would run before the plain tests its worker has yet to run.
XDIST_GROUPS = {
    # Chromium beside a live server: two at once on a machine of two cores starve each
    # other's pages, and the tests' waits were written for one at a time.
    "tests/*/test_browser*.py::*": "chromium",
    "tests/test_api_docs.py::test_swagger_ui_*": "chromium",
    # Its 32-thread tests hold 32 PostgreSQL sessions each; two at once on two workers
    # would take 64 of the server's max_connections (100 by default).
    "tests/policies/test_concurrency.py::*": "32_threads",
    # One gunicorn (the module's fixture ``gunicorn_port``) for them, not one a worker.
    "tests/test_request_bodies.py::*_under_gunicorn": "gunicorn_bodies",
}


def xdist_group(nodeid: str) -> str | None:
    """The group of XDIST_GROUPS the test ``nodeid`` belongs to, if any."""
    return next((group for glob, group in XDIST_GROUPS.items() if fnmatch(nodeid, glob)), None)


def xdist_group_problem(item: pytest.Item) -> str | None:
    """Why ``item`` breaks the rules of XDIST_GROUPS, if it does."""
    fixtures = getattr(item, "fixturenames", ())
    group = xdist_group(item.nodeid)
    if "browser" in fixtures and group != "chromium":
        return "drives Chromium outside the group 'chromium'"
    marker = item.get_closest_marker("django_db")
    transactional = bool(
        marker and (marker.kwargs.get("transaction") or marker.args[:1] == (True,))
    )
    if group and not (transactional or {"transactional_db", "live_server"} & set(fixtures)):
        return f"is in the group {group!r} but not a transactional test"
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problems = [
        f"{item.nodeid} {problem}" for item in items if (problem := xdist_group_problem(item))
    ]
    if problems:
        raise pytest.UsageError("XDIST_GROUPS in tests/conftest.py: " + "; ".join(problems))


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with XDIST_GROUPS: a group is one unit of work (its tests on one
    worker), any other test a unit of its own; units are sent in the collection's order,
    not the largest first, so that each worker keeps pytest-django's order."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling  # type: ignore[import-untyped]

    class Grouped(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid) or super()._split_scope(nodeid)

    config.option.loadscopereorder = False
    return Grouped(config, log)


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
