"""The API without Redis (and without its database): what keeps answering, what answers
503, and that nothing ingested meanwhile goes unwarned."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from django.db import connection
from django.http import HttpResponse

from creditguard.api.problems import ApiProblemMiddleware, exception_handler
from creditguard.api.throttling import clear_local_windows
from creditguard.redis_guard import REDIS_FAILURES, redis_breaker_reset
from metering.models import Balance
from notifications.models import Notification
from policies.tasks import evaluate_pending_task
from tenants.services import api_key_create
from tests.conftest import ALL_SCOPES, World, event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule
from tests.workers import RedisServer, app_environment, free_port, gunicorn

# Every request while Redis is down or hung answers within this: one Redis timeout
# (REDIS_TIMEOUT_SECONDS, 0.5 s) at most, then the breaker skips Redis.
LATENCY_BOUND_SECONDS = 1.5


@pytest.fixture(autouse=True)
def _fresh_limiter() -> Iterator[None]:
    yield
    redis_breaker_reset()
    clear_local_windows()


# --- /healthz ------------------------------------------------------------------------


def test_healthz_with_redis_down_is_degraded_but_200(db, client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error")
    assert time.monotonic() - started < LATENCY_BOUND_SECONDS


def test_healthz_counts_the_redis_failures_of_the_process(world: World, client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    before = REDIS_FAILURES["rate_limit"]
    assert world.alice_api.get("/api/v1/balances").status_code == 200  # limiter fails open
    failures = client.get("/healthz").json()["checks"]["redis_failures"]
    assert failures["failed"]["rate_limit"] == before + 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_healthz_with_the_database_down_is_503(client):
    with database_down():
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["database"].startswith("error")


# --- 503 instead of 500 ----------------------------------------------------------------


class database_down:
    """Point the default connection at a port nobody listens on: a real connection
    failure, not a mock."""

    def __enter__(self) -> None:
        self.port = connection.settings_dict["PORT"]
        connection.close()
        connection.settings_dict["PORT"] = str(free_port())

    def __exit__(self, *exc: object) -> None:
        connection.close()
        connection.settings_dict["PORT"] = self.port


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("path", ["/api/v1/key", "/api/v1/balances"])
def test_a_database_outage_answers_503_problem_with_retry_after(world: World, path):
    with database_down():
        response = world.alice_api.get(path)
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert body["status"] == 503
    assert body["type"].endswith("/service-unavailable")
    assert "connection" not in body["detail"].lower()  # no internals


def redis_error(failure: str) -> redis.RedisError:
    """The error a real redis-py client raises when Redis refuses or never answers."""
    port = free_port()
    listener = None
    if failure == "timeout":  # accepts, never answers: as a paused Redis
        listener = socket.socket()
        listener.bind(("127.0.0.1", port))
        listener.listen()
    try:
        redis.Redis(port=port, socket_connect_timeout=0.2, socket_timeout=0.2).ping()
    except redis.RedisError as exc:
        error = exc
    finally:
        if listener is not None:
            listener.close()
    return error


@pytest.mark.parametrize("failure", ["refused", "timeout"])
def test_a_redis_outage_that_stops_a_request_answers_503_with_retry_after(failure):
    response = exception_handler(redis_error(failure), {})
    assert response is not None
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    assert response.data["type"].endswith("/service-unavailable")
    assert int(response["Retry-After"]) > 0


def test_an_outage_raised_outside_the_views_answers_503_too(rf):
    request = rf.get("/api/v1/balances")
    response = ApiProblemMiddleware(lambda request: HttpResponse()).process_exception(
        request, redis_error("refused")
    )
    assert response is not None
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == "5"


def test_an_ingest_with_redis_hung_neither_waits_nor_fails_and_its_balance_stays_marked(
    world: World, settings, django_capture_on_commit_callbacks
):
    # Accepts connections and never answers, as a paused Redis; gone after 3 s.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    threading.Timer(3, silent.close).start()
    url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    settings.REDIS_URL = url
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": url}}
    settings.API_RATE_LIMIT_PER_SECOND = 0  # the evaluation request alone meets Redis
    failures_before = REDIS_FAILURES["evaluation_request"]

    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        response = world.alice_api.ingest([event("while-hung", quantity=5)])
    assert time.monotonic() - started < LATENCY_BOUND_SECONDS
    assert response.status_code == 200
    assert REDIS_FAILURES["evaluation_request"] == failures_before + 1
    balance = Balance.objects.get(tenant=world.alpha, channel__code="sms")
    assert balance.version > balance.evaluated_version


# --- a real Redis that stops and hangs, under a real web server --------------------------


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.resume()  # a hung server is ended too
    server.stop()


@pytest.fixture
def web_server(redis_server: RedisServer) -> Iterator[str]:
    """gunicorn (two sync workers, as in production) on the test database and the
    test's own Redis, for cache, rate limiter and Celery broker alike."""
    env = app_environment(
        DATABASE_CONN_MAX_AGE="0",
        REDIS_URL=redis_server.url,
        REDIS_TIMEOUT_SECONDS="0.5",
        EVALUATION_COALESCE_SECONDS="0.2",
        LOG_LEVEL="WARNING",
    )
    with gunicorn(env) as base:
        yield base


class Client:
    """One tenant's API calls over HTTP, each timed."""

    def __init__(self, base_url: str, raw_key: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {raw_key}"
        self.latencies: list[float] = []
        self.statuses: list[tuple[str, int]] = []
        self.sent = 0

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        started = time.monotonic()
        response = self.session.request(method, self.base_url + path, json=body, timeout=10)
        self.latencies.append(time.monotonic() - started)
        self.statuses.append((path, response.status_code))
        return response

    def round(self, quantity: int) -> None:
        """Ingest, authorize and commit, read the balances."""
        self.sent += 1
        self.call(
            "POST", "/api/v1/usage-events", {"events": [event(f"e{self.sent}", quantity=quantity)]}
        )
        authorization = self.call(
            "POST", "/api/v1/authorizations", {"channel": "sms", "quantity": 1}
        )
        if authorization.status_code == 200 and authorization.json()["decision"] != "deny":
            self.call("POST", f"/api/v1/authorizations/{authorization.json()['id']}/commit")
        self.call("GET", "/api/v1/balances")

    def run_for(self, seconds: float, quantity: int, *, rounds: int = 0) -> None:
        """Rounds for ``seconds`` and at least ``rounds`` of them: a loaded machine answers
        fewer rounds in the time, and the test needs the usage they book."""
        deadline = time.monotonic() + seconds
        done = 0
        while time.monotonic() < deadline or done < rounds:
            self.round(quantity)
            done += 1


def customer(base_url: str, slug: str) -> tuple[Any, Client]:
    tenant = TenantFactory.create(slug=slug)
    set_rule(tenant, "sms", included_units=1000, warning_thresholds=[80])
    return tenant, Client(
        base_url, api_key_create(tenant=tenant, name=slug, scopes=ALL_SCOPES).raw_key
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_api_answers_while_redis_is_down_or_hung_and_warns_once_it_is_back(
    redis_server: RedisServer, web_server: str
):
    stopped_tenant, during_stop = customer(web_server, "during-stop")
    paused_tenant, during_pause = customer(web_server, "during-pause")
    for client in (during_stop, during_pause):
        client.round(quantity=10)  # with Redis: 11 of 1000 used (and the workers warm)
        client.latencies.clear()

    redis_server.stop()
    # 8 rounds of 100 (+1 authorized) units: 819 of 1000 used, past 80 %.
    during_stop.run_for(3, quantity=100, rounds=8)
    redis_server.start()  # the same port, empty

    redis_server.pause()
    try:
        during_pause.run_for(3, quantity=100, rounds=8)
    finally:
        redis_server.resume()

    for client in (during_stop, during_pause):
        print(f"{len(client.latencies)} requests, slowest {max(client.latencies):.3f} s")
        assert {status for _, status in client.statuses} <= {200, 201}, client.statuses
        assert max(client.latencies) < LATENCY_BOUND_SECONDS, max(client.latencies)
        assert len(client.latencies) > 12  # kept answering, not one slow request
        assert any(path.endswith("/commit") for path, _ in client.statuses)
    # The evaluation requests of the outage were not sent; the balances stay marked.
    for tenant in (stopped_tenant, paused_tenant):
        assert not Notification.objects.filter(tenant=tenant, kind="threshold_warning").exists()
        assert Balance.objects.get(tenant=tenant, channel__code="sms").version > (
            Balance.objects.get(tenant=tenant, channel__code="sms").evaluated_version
        )

    # Redis is back: beat's evaluate-pending (every 15 s) runs as a worker runs it.
    evaluate_pending_task()
    for tenant in (stopped_tenant, paused_tenant):
        warning = Notification.objects.get(tenant=tenant, kind="threshold_warning")
        assert warning.payload["threshold"] == 80
